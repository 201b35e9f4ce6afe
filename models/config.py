"""The diffusion settings a checkpoint carries (``diffusion_config.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from common.errors import UsageError
from diffusion import OBJECTIVES, AbsorbingDiffusion, NoiseSchedule, token_information
from models.time_embedding import TIMESTEPS

FORMAT = "diffusionbert-checkpoint/1"


@dataclass
class DiffusionConfig:
    """Everything besides the network that sampling and evaluation need.

    ``task`` is None for an unconditional model; for seq2seq it names the task (its prompt)
    and ``max_target_length`` the size of the generated target region.
    """

    schedule: str = "mutual"
    num_steps: int = 2048
    word_freq_lambda: float = 0.0
    allow_nonmonotone_lambda: bool = False
    timestep: str = "none"
    objective: str = "d3pm"
    hybrid_lambda: float = 0.01
    max_length: int = 128
    task: str | None = None
    max_target_length: int = 0
    format: str = FORMAT

    def __post_init__(self) -> None:
        if self.timestep not in TIMESTEPS:
            raise UsageError(
                f"--timestep {self.timestep!r} is unknown: choose one of {', '.join(TIMESTEPS)}"
            )
        if self.objective not in OBJECTIVES:
            raise UsageError(
                f"--objective {self.objective!r} is unknown: choose one of {', '.join(OBJECTIVES)}"
            )
        self.noise_schedule()

    def noise_schedule(self) -> NoiseSchedule:
        return NoiseSchedule(
            self.schedule,
            self.num_steps,
            self.word_freq_lambda,
            allow_nonmonotone=self.allow_nonmonotone_lambda,
        )

    def diffusion(
        self,
        counts: torch.Tensor | None,
        mask_id: int,
        pad_id: int | None,
        protocol: str = "exact",
    ) -> AbsorbingDiffusion:
        """The absorbing process; ``counts`` (V,) are the training split's token counts."""
        h = None if counts is None else token_information(counts, pad_id)
        if h is not None:
            h[mask_id] = 0.0
        return AbsorbingDiffusion(self.noise_schedule(), mask_id, h, protocol)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> DiffusionConfig:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            message = f"{path} is not valid JSON ({error}); the checkpoint is damaged"
            raise UsageError(message) from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown or data.get("format") != FORMAT:
            raise UsageError(
                f"{path}: not a {FORMAT} settings file (format={data.get('format')!r}, unknown "
                f"keys {unknown}); was it written by this project's main.py?"
            )
        return cls(**data)
