"""Resuming a run: the saved state checked against the new run (settings, token counts,
optimizer shapes, number of processes)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from common.errors import UsageError
from common.files import RUN_LOCK, locked_by_another
from common.precision import PRECISIONS, resolve_precision
from common.runtime import pick_device
from models import load_training_state, resolve_checkpoint_dir
from models.checkpoint import STATISTICS, TRAINING_ARGS, TRAINING_STATE
from models.training_state import StillTraining
from training.config import resume_differences
from training.run_dir import owned_checkpoints
from training.trainer import Trainer

AUTO = "auto"


def latest_checkpoint(output_dir: str | Path, check_lock: bool = True) -> Path | None:
    """``--resume_from auto``: the intact checkpoint of ``output_dir`` (its ``last/`` or a
    ``checkpoint-<step>`` copy it owns) with the latest step, skipping any whose training
    state cannot be read (a torn save); None when there is none (a fresh start). A run still
    training in that folder is one error, not a fresh start beside it (``check_lock``: off on
    the ranks > 0 of a torchrun launch, whose rank 0 may hold the lock already)."""
    output_dir = Path(output_dir)
    if check_lock and locked_by_another(output_dir / RUN_LOCK):
        raise UsageError(
            f"--resume_from auto: the run in {output_dir} is still training; stop it first "
            "(Ctrl-C saves last/), then resume"
        )
    found: list[tuple[int, Path]] = []
    steps = owned_checkpoints(output_dir) if output_dir.is_dir() else []
    for candidate in (output_dir / "last", *(output_dir / f"checkpoint-{s}" for s in steps)):
        try:
            folder = resolve_checkpoint_dir(candidate, "--resume_from auto")
            found.append((load_training_state(folder, check_lock)["step"], folder))
        except StillTraining:
            raise
        except UsageError:  # missing, incomplete or torn: the next candidate
            continue
    return max(found, key=lambda item: item[0])[1] if found else None


def resume_state(
    resume_from: str | None, settings: dict, output_dir: str | Path | None = None,
    check_lock: bool = True,
) -> tuple[Path | None, dict | None]:  # fmt: skip
    """The folder and training state to resume from (``--resume_from``; ``auto``: the latest
    intact checkpoint of ``output_dir``, or none), checked against the new run's flags
    ``settings``: a difference in a setting that changes the run is refused. ``check_lock``:
    see ``load_training_state`` (off on ranks > 0)."""
    if resume_from == AUTO:
        latest = latest_checkpoint(output_dir, check_lock) if output_dir is not None else None
        if latest is None:
            return None, None
        resume_from = str(latest)
    if not resume_from:
        return None, None
    resume_dir = resolve_checkpoint_dir(resume_from, "--resume_from")
    state = load_training_state(resume_dir, check_lock)
    changed = resume_differences(state["args"], settings)
    saved = saved_precision(resume_dir)
    if saved is not None:  # the precision computed, not the --bf16 flag, must not change
        changed.pop("bf16", None)
    listed = [f"--{k} was {old!r}, now {new!r}" for k, (old, new) in changed.items()]
    if saved is not None:
        bf16 = bool(settings.get("bf16"))
        now = resolve_precision(bf16, pick_device(settings.get("device", "auto")))
        if saved != now:
            listed.append(f"it computed in {saved}; here --bf16 {str(bf16).lower()} would "
                          f"compute in {now}")  # fmt: skip
    if listed:
        raise UsageError(
            f"--resume_from {resume_dir}: settings differ from that run: {'; '.join(listed)}. "
            "Resume with the original settings or start a new --output_dir"
        )
    return resume_dir, state


def saved_precision(folder: Path) -> str | None:
    """The precision the run saved in ``folder`` computed in (its ``training_args.json``'s
    ``resolved.precision``); None for a folder older than that field or without the file."""
    try:
        run = json.loads((folder / TRAINING_ARGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    resolved = run.get("resolved") if isinstance(run, dict) else None
    precision = resolved.get("precision") if isinstance(resolved, dict) else None
    return precision if precision in PRECISIONS else None


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
