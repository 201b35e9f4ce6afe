"""``training_state.pt`` of a ``last/`` folder: loaded safely (tensors and plain values only)
and its layout checked before a resume uses it."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import torch

from common.errors import UsageError
from common.files import RUN_LOCK, locked_by_another
from models.card import TRAINING_ARGS
from models.folder_checks import TRAINING_STATE, damaged, one_line

STATE_KEYS = {
    "step": int,
    "optimizer": dict,
    "scheduler": dict,
    "rng": list,
    "bad_steps": int,
    "skipped_steps": int,
    "args": dict,
}


class StillTraining(UsageError):
    """The checkpoint's run folder is locked by a running main.py."""


def load_training_state(path: Path, check_lock: bool = True) -> dict:
    """``training_state.pt`` of a ``last/`` folder, loaded with ``weights_only=True`` and its
    layout checked; a torn or foreign file is one error naming it. ``check_lock``: refuse a
    folder whose run is still training (``StillTraining``); off on the ranks > 0 of a
    torchrun launch, whose rank 0 locks the folder it resumes."""
    file = Path(path) / TRAINING_STATE
    run_folder = Path(os.path.realpath(path)).parent
    if check_lock and locked_by_another(run_folder / RUN_LOCK):
        raise StillTraining(
            f"--resume_from {path}: the run in {run_folder} is still training and replaces "
            "this checkpoint while it is read; stop that run first (Ctrl-C saves last/), or "
            "copy the folder while it is stopped and resume from the copy"
        )
    if not file.is_file():
        raise UsageError(
            f"--resume_from {path}: no {TRAINING_STATE}; pass <output_dir>/last of a run"
        )
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol advice: the error says it
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False, which would run the file's code: never
        raise damaged(
            file, "holds Python objects besides tensors and plain values, which are not loaded "
            "(they could run code); it was not written by main.py"
        ) from None  # fmt: skip
    except Exception as error:  # noqa: BLE001 (a torn zip raises RuntimeError, EOFError...)
        raise damaged(file, f"cannot be read ({one_line(error)})") from None
    if not isinstance(state, dict):
        raise damaged(file, f"expected a dict of training state, found {type(state).__name__}")
    for key, kind in STATE_KEYS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise damaged(file, f"{key!r} is missing or not a {kind.__name__}")
    if state["step"] < 0 or not ("best" in state and (
        state["best"] is None or isinstance(state["best"], float)
    )):  # fmt: skip
        raise damaged(file, "'step' or 'best' is out of range")
    recorded = _recorded_step(Path(path) / TRAINING_ARGS)
    if recorded is not None and recorded != state["step"]:
        raise damaged(
            file, f"holds step {state['step']} but {TRAINING_ARGS} step {recorded}: the folder "
            "mixes two saves"
        )  # fmt: skip
    return state


def _recorded_step(file: Path) -> int | None:
    """The step ``training_args.json`` records (None when the file or the field is absent)."""
    try:
        step = json.loads(file.read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) else None
