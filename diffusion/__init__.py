"""Absorbing-state (masked) discrete diffusion: pure tensor math, no model and no IO.

A *denoiser* is any callable ``denoiser(xt, u, masked) -> log_probs`` with xt (B, L) ids,
u (B,) times in [0, 1], masked (B, L) bool, returning log p_θ(x0 | x_t) at the masked positions
in row-major order, shape (N, V), with the [M] entry at −inf. A network that sets
``accepts_target`` also takes ``target=`` (N,) ids and returns only log p_θ(target), (N,),
which is all the losses need when the reveal rate does not depend on the candidate
(``types.target_log_probs``).

Registries map names to classes (or loss functions): ``BASE_SCHEDULES``, ``PROTOCOLS``,
``SAMPLERS``, ``OBJECTIVES``, ``ESTIMATORS`` (of the continuous bound). Bad settings raise
``ParameterError``, which names the parameter.
"""

from diffusion.base_schedules import BASE_SCHEDULES, BaseSchedule, make_base_schedule
from diffusion.blocks import row_blocks
from diffusion.bound_batch import BoundBatch, ContinuousDraws
from diffusion.draws import PROPOSAL_EDGES, TimeProposal
from diffusion.elbo import continuous_draws, continuous_nelbo, discrete_nelbo, discrete_terms
from diffusion.errors import ParameterError, check_step_size
from diffusion.estimators import (
    ESTIMATORS,
    ContinuousEstimator,
    check_estimator,
    estimator_help,
    make_estimator,
)
from diffusion.guidance import GuidedDenoiser
from diffusion.kl import absorbing_kl, masked_kl
from diffusion.losses import OBJECTIVES, LossOutput, Noise, antithetic, d3pm_loss, mdlm_loss
from diffusion.noise import BatchNoise, KeyedNoise
from diffusion.process import AbsorbingDiffusion
from diffusion.protocols import (
    PROTOCOLS,
    ExactProtocol,
    OfficialProtocol,
    ReverseProtocol,
    make_protocol,
)
from diffusion.samplers import (
    SAMPLERS,
    AncestralSampler,
    CachedSampler,
    OfficialSampler,
    RowCache,
    RowCacheSampler,
    Sampler,
    filter_log_probs,
    make_sampler,
)
from diffusion.sampling import SamplingResult, sample
from diffusion.schedule import NoiseSchedule, Spindle
from diffusion.spindle import centred_information, token_information

__all__ = [
    "BASE_SCHEDULES",
    "ESTIMATORS",
    "OBJECTIVES",
    "PROPOSAL_EDGES",
    "PROTOCOLS",
    "SAMPLERS",
    "AbsorbingDiffusion",
    "AncestralSampler",
    "BaseSchedule",
    "BatchNoise",
    "BoundBatch",
    "CachedSampler",
    "ContinuousDraws",
    "ContinuousEstimator",
    "ExactProtocol",
    "GuidedDenoiser",
    "KeyedNoise",
    "LossOutput",
    "Noise",
    "NoiseSchedule",
    "OfficialProtocol",
    "OfficialSampler",
    "ParameterError",
    "ReverseProtocol",
    "RowCache",
    "RowCacheSampler",
    "Sampler",
    "SamplingResult",
    "Spindle",
    "TimeProposal",
    "absorbing_kl",
    "antithetic",
    "centred_information",
    "check_estimator",
    "check_step_size",
    "continuous_draws",
    "continuous_nelbo",
    "d3pm_loss",
    "discrete_nelbo",
    "discrete_terms",
    "estimator_help",
    "filter_log_probs",
    "make_base_schedule",
    "make_estimator",
    "make_protocol",
    "make_sampler",
    "masked_kl",
    "mdlm_loss",
    "row_blocks",
    "sample",
    "token_information",
]
