"""The diffusion settings a checkpoint carries (``diffusion_config.json``)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from common.errors import UsageError
from common.files import read_text
from conditional_data.tasks import TASKS
from diffusion import (
    BASE_SCHEDULES,
    OBJECTIVES,
    AbsorbingDiffusion,
    NoiseSchedule,
    token_information,
)
from models.time_embedding import TIMESTEPS

FORMAT = "diffusionbert-checkpoint/1"
AUTOREGRESSIVE = "ar"
# Every training objective: the diffusion losses and the autoregressive twin (models.causal).
MODEL_OBJECTIVES = (*OBJECTIVES, AUTOREGRESSIVE)


@dataclass
class DiffusionConfig:
    """Everything besides the network that sampling and evaluation need.

    ``task`` is None for an unconditional model; for seq2seq it names the task (its prompt)
    and ``max_target_length`` the size of the generated target region. ``objective`` ``ar``
    marks the autoregressive twin (``models.causal``), for which the diffusion settings are
    unused.
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
        if self.objective not in MODEL_OBJECTIVES:
            raise UsageError(
                f"--objective {self.objective!r} is unknown: choose one of "
                f"{', '.join(MODEL_OBJECTIVES)}"
            )
        self.noise_schedule()

    @property
    def autoregressive(self) -> bool:
        """Whether the checkpoint is the autoregressive twin (no diffusion)."""
        return self.objective == AUTOREGRESSIVE

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
        if self.autoregressive:
            raise UsageError(
                "this is an autoregressive checkpoint (objective ar): it has no diffusion "
                "process; its likelihood is exact (compute_elbo.py) and it samples left to right "
                "(predict.py)"
            )
        h = None if counts is None else token_information(counts, pad_id)
        if h is not None:
            h[mask_id] = 0.0
        return AbsorbingDiffusion(self.noise_schedule(), mask_id, h, protocol)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> DiffusionConfig:
        """The settings of a checkpoint folder, every key present and of its type (a value that
        cannot be right is reported with the file, never as a flag)."""
        path = Path(path)
        damaged = "re-save the folder from its run's last/ or retrain"
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as error:
            message = f"{path} is not valid JSON ({error}); the checkpoint is damaged: {damaged}"
            raise UsageError(message) from None
        except OSError as error:
            raise UsageError(f"{path}: cannot be read ({error.strerror})") from None
        if not isinstance(data, dict):
            raise UsageError(
                f"{path}: expected a JSON object of settings, found a {type(data).__name__}; "
                f"the checkpoint is damaged: {damaged}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown or data.get("format") != FORMAT:
            raise UsageError(
                f"{path}: not a {FORMAT} settings file (format={data.get('format')!r}, unknown "
                f"keys {unknown}); was it written by this project's main.py?"
            )
        data = dict(data)
        if "task" not in data and "max_target_length" not in data:
            data.update(task=None, max_target_length=0)  # written before seq2seq existed
        missing = sorted(known - set(data))
        if missing:
            raise UsageError(
                f"{path}: keys {', '.join(missing)} are missing; the checkpoint is damaged: "
                f"{damaged}"
            )
        for name, value in data.items():
            problem = _bad_value(name, value)
            if problem:
                raise UsageError(f"{path}: {name}={value!r} {problem}; {damaged}")
        try:
            return cls(**data)
        except ValueError as error:
            message = str(error).replace("--", "")
            raise UsageError(f"{path}: {message} (a setting saved in the checkpoint)") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad_value(name: str, value: object) -> str | None:
    """Why ``value`` cannot be the setting ``name`` (None when it can)."""
    if name in ("schedule", "timestep", "objective", "format"):
        choices = {"schedule": BASE_SCHEDULES, "timestep": TIMESTEPS, "objective": MODEL_OBJECTIVES}
        if not isinstance(value, str):
            return "must be a string"
        if name in choices and value not in choices[name]:
            return f"is not one of {', '.join(choices[name])}"
    elif name in ("num_steps", "max_length"):
        if not _is_int(value) or value < 1:
            return "must be an integer ≥ 1"
    elif name == "max_target_length":
        if not _is_int(value) or value < 0:
            return "must be an integer ≥ 0"
    elif name in ("word_freq_lambda", "hybrid_lambda"):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            return "must be a finite number ≥ 0"
    elif name == "allow_nonmonotone_lambda":
        if not isinstance(value, bool):
            return "must be true or false"
    elif name == "task" and value is not None:
        if not isinstance(value, str):
            return "must be a task name or null"
        if value not in TASKS:
            return f"is not a known task ({', '.join(TASKS)})"
    return None
