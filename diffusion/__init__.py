"""Absorbing-state (masked) discrete diffusion: pure tensor math, no model and no IO.

A *denoiser* is any callable ``denoiser(xt, u, masked) -> log_probs`` with xt (B, L) ids,
u (B,) times in [0, 1], masked (B, L) bool, returning log p_θ(x0 | x_t) at the masked positions
in row-major order, shape (N, V), with the [M] entry at −inf. A network that sets
``accepts_target`` also takes ``target=`` (N,) ids and returns only log p_θ(target), (N,),
which is all the losses need when the reveal rate does not depend on the candidate
(``types.target_log_probs``).
"""

from diffusion.elbo import continuous_nelbo, discrete_nelbo
from diffusion.guidance import GuidedDenoiser
from diffusion.kl import absorbing_kl, masked_kl
from diffusion.losses import OBJECTIVES, LossOutput, Noise, antithetic, d3pm_loss, mdlm_loss
from diffusion.process import PROTOCOLS, AbsorbingDiffusion
from diffusion.sampling import SAMPLERS, SamplingResult, filter_log_probs, sample
from diffusion.schedule import BASE_SCHEDULES, NoiseSchedule
from diffusion.spindle import centred_information, token_information

__all__ = [
    "BASE_SCHEDULES",
    "OBJECTIVES",
    "PROTOCOLS",
    "SAMPLERS",
    "AbsorbingDiffusion",
    "GuidedDenoiser",
    "LossOutput",
    "Noise",
    "NoiseSchedule",
    "SamplingResult",
    "absorbing_kl",
    "antithetic",
    "centred_information",
    "continuous_nelbo",
    "d3pm_loss",
    "discrete_nelbo",
    "filter_log_probs",
    "masked_kl",
    "mdlm_loss",
    "sample",
    "token_information",
]
