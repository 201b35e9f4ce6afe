"""The sampling settings, built and validated once per script (``SamplingConfig``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from common.checks import check_number, check_seed
from common.cli import Parser, choices
from common.errors import UsageError
from diffusion import SAMPLERS, Sampler, make_sampler

AUTO = "auto"  # ``rowcache`` for a time-agnostic checkpoint, ``ancestral`` for any other


@dataclass(frozen=True)
class SamplingConfig:
    """How to run the reverse process.

    ``sampling_steps`` is T', the number of steps of the sampling chain (the scripts' flag
    ``--num_steps``); None means the checkpoint's training T. It is never the training T
    itself: a model trained with T = 2048 can be sampled with T' = 64. Each network call
    advances ``step_size`` steps of T'. ``sampler`` is a name in ``diffusion.SAMPLERS`` or
    ``auto``: ``rowcache`` for a time-agnostic checkpoint (the same samples as ``ancestral``
    at a cost that follows the tokens, not the steps), else ``ancestral``
    (``for_model`` resolves it).
    """

    sampler: str = "ancestral"
    sampling_steps: int | None = None
    step_size: int = 1
    temperature: float = 1.0
    topk: int = 0
    topp: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_number("--temperature", self.temperature, 0, 1e6, low_open=True)
        check_number("--topp", self.topp, 0, 1, low_open=True, note="1 = off")
        check_number("--topk", self.topk, 0, 2**31, note="0 = off")
        check_seed("--seed", self.seed)
        if self.sampling_steps is not None:
            check_number(
                "--num_steps", self.sampling_steps, 1, 10**7, note="T'; omit it for the training T"
            )
        check_number("--step_size", self.step_size, 1, 10**7)
        name = "ancestral" if self.sampler == AUTO else self.sampler
        make_sampler(name, self.temperature, self.topk, self.topp)  # ParameterError if bad
        steps = self.sampling_steps
        if self.step_size < 1 or (steps is not None and (steps < 1 or steps % self.step_size)):
            raise UsageError(
                f"--step_size {self.step_size} must be ≥ 1 and divide --num_steps {steps}"
            )

    @classmethod
    def from_namespace(cls, args: Any) -> SamplingConfig:
        """From parsed flags: ``--sampler --num_steps --step_size --temperature --topk --topp
        --seed``."""
        return cls(
            sampler=args.sampler,
            sampling_steps=args.num_steps,
            step_size=args.step_size,
            temperature=args.temperature,
            topk=args.topk,
            topp=args.topp,
            seed=args.seed,
        )

    def steps(self, training_steps: int) -> int:
        """T' for a checkpoint trained with T = ``training_steps``, checked against the stride."""
        steps = self.sampling_steps or training_steps
        if steps % self.step_size:
            raise UsageError(
                f"--step_size {self.step_size} must be ≥ 1 and divide --num_steps {steps}"
            )
        return steps

    def sampler_object(self) -> Sampler:
        """The diffusion sampler with these filters (``auto``: resolve it with ``for_model``
        first)."""
        return make_sampler(self.sampler, self.temperature, self.topk, self.topp)

    def for_model(self, timestep: str) -> SamplingConfig:
        """These settings for a checkpoint with this ``--timestep``: ``auto`` resolved, and a
        sampler that reuses p_θ across steps refused for a time-conditioned network."""
        if self.sampler == AUTO:
            return replace(self, sampler="rowcache" if timestep == "none" else "ancestral")
        self.check_model(timestep)
        return self

    def check_model(self, timestep: str) -> None:
        """The ``cached`` and ``rowcache`` samplers reuse p_θ(x0 | x_t) across steps: exact
        only for a time-agnostic network. ``auto`` always fits."""
        if self.sampler == AUTO:
            return
        if SAMPLERS[self.sampler].time_agnostic_only and timestep != "none":
            raise UsageError(
                f"--sampler {self.sampler} reuses p_θ(x0 | x_t) across steps, which is only exact "
                f"for a time-agnostic network; this checkpoint uses --timestep {timestep}: "
                "use --sampler ancestral"
            )


def add_sampling_flags(p: Parser) -> None:
    """The flags ``SamplingConfig.from_namespace`` reads, shared by every sampling script:
    ``--num_steps --step_size --sampler --topk --topp --temperature --seed``."""
    a = p.flag
    a("--num_steps", type=int, default=None, help="T' (default: training T)")
    a("--step_size", type=int, default=1, help="t moves by this many steps per call")
    a(
        "--sampler",
        default=AUTO,
        choices=[AUTO, *choices(SAMPLERS)],
        help="auto: rowcache for a time-agnostic checkpoint, else ancestral; ancestral: every "
        "step; cached: skip calls while nothing is unmasked; rowcache: forward only the rows "
        "that changed; official: the reference code's sampler",
    )
    a("--topk", type=int, default=0, help="sample from the k most likely tokens; 0 = off")
    a("--topp", type=float, default=1.0, help="nucleus sampling mass; 1 = off")
    a("--temperature", type=float, default=1.0, help="softmax temperature of the x0 prediction")
    a("--seed", type=int, default=0, help="seeds the noise of sampling")
