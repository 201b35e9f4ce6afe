"""The training settings a run is built from (``TrainingConfig``), and which settings a resumed
run must share with the run it continues."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from training.settings import locked

# Settings a resumed run must share with the run it continues: those declared ``locked``.
RESUME_LOCKED = locked()
# The value a setting had in runs saved before it existed.
BEFORE_IT_EXISTED = {"group_by_length": False, "ema": 0.0}


@dataclass(frozen=True)
class TrainingConfig:
    """How to train (the diffusion settings live in ``models.DiffusionConfig``).

    Field names are the flags of main.py, so ``from_namespace`` builds it from parsed args.
    ``max_steps`` ≤ 0 means ``epochs`` passes over the training set; ``save_steps`` None
    means ``eval_steps``.
    """

    lr: float = 5e-5
    epochs: int = 3
    max_steps: int = -1
    batch_size: int = 64
    accumulation_steps: int = 1
    lr_schedule: str = "invsqrt"
    warmup_steps: int = 10000
    weight_decay: float = 0.0
    max_grad_norm: float = 0.0
    bf16: bool = True
    per_sequence_t: bool = False
    group_by_length: bool = False
    compile: bool = False
    ema: float = 0.0
    seed: int = 42
    data_seed: int = 42
    logging_steps: int = 100
    eval_steps: int = 2000
    eval_step_size: int = 4
    eval_batch_size: int = 64
    eval_samples: int = 4
    eval_sample_steps: int = 64
    eval_gen_ppl_model: str | None = None
    save_steps: int | None = None
    keep_last: int = 0

    @classmethod
    def from_namespace(cls, args: Any) -> TrainingConfig:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    @property
    def save_every(self) -> int:
        return self.save_steps or self.eval_steps


def resume_differences(saved: dict, now: dict) -> dict[str, tuple[Any, Any]]:
    """{name: (saved value, new value)} for every ``RESUME_LOCKED`` setting that changed."""
    old = {k: saved.get(k, BEFORE_IT_EXISTED.get(k)) for k in RESUME_LOCKED}
    if "data_seed" not in saved:  # before --data_seed, the dev set was drawn with --seed
        old["data_seed"] = saved.get("seed")
    return {k: (old[k], now[k]) for k in RESUME_LOCKED if old[k] != now[k]}
