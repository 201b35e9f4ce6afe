"""The training settings a run is built from (``TrainingConfig``), and which settings a resumed
run must share with the run it continues."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from training.settings import default, locked

# Settings a resumed run must share with the run it continues: those declared ``locked``.
RESUME_LOCKED = locked()
# The value a setting had in runs saved before it existed.
BEFORE_IT_EXISTED = {"group_by_length": False, "ema": 0.0}


@dataclass(frozen=True)
class TrainingConfig:
    """How to train (the diffusion settings live in ``models.DiffusionConfig``).

    Field names are the flags of main.py, so ``from_namespace`` builds it from parsed args;
    the defaults are the flags' (``training.settings``, the one declaration of each).
    ``max_steps`` ≤ 0 means ``epochs`` passes over the training set; ``save_steps`` None
    means ``eval_steps``.
    """

    lr: float = default("lr")
    epochs: int = default("epochs")
    max_steps: int = default("max_steps")
    batch_size: int = default("batch_size")
    accumulation_steps: int = default("accumulation_steps")
    lr_schedule: str = default("lr_schedule")
    warmup_steps: int = default("warmup_steps")
    weight_decay: float = default("weight_decay")
    max_grad_norm: float = default("max_grad_norm")
    bf16: bool = default("bf16")
    per_sequence_t: bool = default("per_sequence_t")
    group_by_length: bool = default("group_by_length")
    compile: bool = default("compile")
    ema: float = default("ema")
    seed: int = default("seed")
    data_seed: int = default("data_seed")
    logging_steps: int = default("logging_steps")
    eval_steps: int = default("eval_steps")
    eval_step_size: int = default("eval_step_size")
    eval_batch_size: int = default("eval_batch_size")
    eval_samples: int = default("eval_samples")
    eval_sample_steps: int = default("eval_sample_steps")
    eval_gen_ppl_model: str | None = default("eval_gen_ppl_model")
    save_steps: int | None = default("save_steps")
    keep_last: int = default("keep_last")

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
