"""Resuming a run: the saved state checked against the new run (settings, token counts,
optimizer shapes, number of processes)."""

from __future__ import annotations

from pathlib import Path

import torch

from common.errors import UsageError
from models import load_training_state, resolve_checkpoint_dir
from models.checkpoint import STATISTICS, TRAINING_STATE
from training.config import resume_differences
from training.trainer import Trainer


def resume_state(resume_from: str | None, settings: dict) -> tuple[Path | None, dict | None]:
    """The folder and training state to resume from (``--resume_from``), checked against the
    new run's flags ``settings``: a difference in a setting that changes the run is refused."""
    if not resume_from:
        return None, None
    resume_dir = resolve_checkpoint_dir(resume_from, "--resume_from")
    state = load_training_state(resume_dir)
    changed = resume_differences(state["args"], settings)
    if changed:
        listed = "; ".join(f"--{k} was {old!r}, now {new!r}" for k, (old, new) in changed.items())
        raise UsageError(
            f"--resume_from {resume_dir}: settings differ from that run: {listed}. "
            "Resume with the original settings or start a new --output_dir"
        )
    return resume_dir, state


def check_resumed_counts(resume_dir: Path, saved: torch.Tensor | None, counts) -> None:
    """The token counts of this run (--word_freq_file) are the ones the run started with."""
    same = (saved is None) == (counts is None) and (
        saved is None or (saved.shape == counts.shape and torch.equal(saved, counts))
    )
    if not same:
        raise UsageError(
            f"--word_freq_file: its counts differ from those the run was trained with "
            f"({resume_dir / STATISTICS}); resuming would change the spindle schedule mid-run. "
            "Pass the original --word_freq_file or start a new --output_dir"
        )


def load_resumed_state(trainer: Trainer, state: dict, resume_dir: Path) -> None:
    """``trainer.load_state_dict(state)``, with a state that does not fit this run (another
    model, another number of processes) reported as one line naming the file."""
    file = resume_dir / TRAINING_STATE
    world = trainer.world_size
    if len(state["rng"]) != world:
        raise UsageError(
            f"{file}: written by a run of {len(state['rng'])} process(es), resumed with {world}; "
            "resume with the same number of processes (the batch and the RNG states depend on it)"
        )
    params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    saved = state["optimizer"].get("state", {})
    groups = state["optimizer"].get("param_groups", [])
    count = sum(len(g.get("params", [])) for g in groups if isinstance(g, dict))
    wrong = count != len(params) or any(
        isinstance(entry, dict)
        and isinstance(entry.get(key), torch.Tensor)
        and (not isinstance(index, int) or index >= len(params) or
             entry[key].shape != params[index].shape)
        for index, entry in saved.items()
        for key in ("exp_avg", "exp_avg_sq")
    )  # fmt: skip
    if wrong:
        raise UsageError(
            f"{file}: the optimizer state does not fit the model ({count} parameters saved, "
            f"{len(params)} in the model, or other shapes); the folder mixes files of different "
            "runs: resume from that run's own last/ or start a new --output_dir"
        )
    try:
        trainer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as error:
        raise UsageError(f"{file}: cannot be resumed from ({error}); the file is damaged") from None
