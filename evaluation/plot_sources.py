"""The files the pictures read (evaluation/plots.py), checked as they are read: a line, a frame
or a file that is not what its writer writes is one ``UsageError`` naming the file (and the
line or frame), never a blank picture."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from common.errors import UsageError
from common.files import iter_jsonl


class NoTerms(UsageError):
    """A compute_elbo.py record without the bound's split by time."""


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path`` (``what`` says which script writes it); anything else is
    one line naming the file."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        why = getattr(error, "strerror", None) or error
        message = f"{path}: cannot be read as JSON ({why}); rewrite it with {what}"
        raise UsageError(message) from None
    if not isinstance(record, dict):
        raise UsageError(f"{path}: a JSON object is expected; rewrite it with {what}")
    return record


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def training_records(log: Path) -> list[dict]:
    """The records of a ``train_log.jsonl``: every line an object with an integer ``step`` and
    numeric figures. A line without them, or a log without a training record, is one line
    naming the file (and the line)."""
    log = Path(log)
    if not log.is_file():
        raise UsageError(f"{log}: no such file")
    records = []
    for number, record, _ in iter_jsonl(log):
        where = f"{log}:{number}"
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise UsageError(f"{where}: no integer 'step' (main.py writes one on every line); "
                             "fix or delete that line")  # fmt: skip
        for key in ("loss", "train_nats_per_token", "loss_per_token", "lr", "dev_nats_per_token"):
            if key in record and not is_number(record[key]):
                raise UsageError(f"{where}: {key} is {record[key]!r}, not a finite number; fix "
                                 "or delete that line")  # fmt: skip
        records.append(record)
    if not any("loss" in r for r in records):
        raise UsageError(f"{log}: no training record yet (one comes every --logging_steps); "
                         "draw it again later")  # fmt: skip
    return records


def loss_meaning(run_dir: Path) -> str:
    """What the run's ``train_nats_per_token`` is, from its checkpoint settings (best/ or
    last/)."""
    from models.checkpoint import SETTINGS
    from models.config import DiffusionConfig

    for name in ("best", "last"):
        settings = Path(run_dir) / name / SETTINGS
        if settings.is_file():
            try:
                config = DiffusionConfig.load(settings)
            except UsageError:  # a damaged settings file only costs the explanation
                continue
            if config.autoregressive:
                return "ar: the exact next-token NLL"
            if config.objective == "mdlm":
                return "mdlm: one draw of MDLM's continuous objective"
            return (
                f"d3pm: T × one random step's KL, a one-draw estimate of the bound; the "
                f"{config.hybrid_lambda:g}·CE hybrid term is trained but not shown"
            )
    return "the training objective"


def spindle_curves(checkpoint: Path, points: int = 201) -> dict:
    """ᾱ(u) of the plain schedule and, with the spindle, of three tokens of the training
    counts: the most frequent, the median (among tokens seen) and the rarest seen, each with
    w = h(v) − h̄, h̄ the count-weighted mean information (a typical sequence's mean)."""
    from transformers import AutoConfig, AutoTokenizer

    from diffusion import token_information
    from models.checkpoint import SETTINGS, STATISTICS, resolve_checkpoint_dir
    from models.config import DiffusionConfig
    from models.folder_checks import load_statistics

    folder = resolve_checkpoint_dir(checkpoint)
    config = DiffusionConfig.load(folder / SETTINGS)
    schedule = config.noise_schedule()
    u = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    drawn = {
        "u": u.tolist(),
        "plain": schedule.base_alpha_bar(u).tolist(),
        "word_freq_lambda": config.word_freq_lambda,
        "schedule": config.schedule,
        "tokens": {},
    }
    if not (folder / STATISTICS).is_file() or not schedule.spindle:
        return drawn
    tokenizer = AutoTokenizer.from_pretrained(folder)
    vocab = AutoConfig.from_pretrained(folder).vocab_size
    # checked: a damaged file or counts that cannot be right are one line naming the file
    counts = load_statistics(folder, config, vocab, len(tokenizer)).get("token_counts")
    if counts is None:
        return drawn
    h = token_information(counts, tokenizer.pad_token_id).to(torch.float64)
    weights = counts.to(torch.float64)
    mean = float((weights * h).sum() / weights.sum())
    seen = (counts > 0).nonzero(as_tuple=True)[0]
    order = seen[torch.argsort(counts[seen], descending=True, stable=True)]
    picks = {"most frequent": order[0], "median": order[len(order) // 2], "rarest": order[-1]}
    for label, token in picks.items():
        w = torch.full((points, 1), float(h[token]) - mean, dtype=torch.float64)
        alpha = schedule.alpha_bar(u, w).squeeze(-1)
        drawn["tokens"][label] = {
            "id": int(token),
            "token": tokenizer.convert_ids_to_tokens(int(token)),
            "count": int(counts[token]),
            "w": float(h[token]) - mean,
            "alpha_bar": alpha.tolist(),
        }
    return drawn


def sampler_used(process_json: Path, record: dict) -> str:
    """The sampler that ran: the process file's ``sampler_used``, else that of predict.py's
    settings file beside it (``<output>.json``), else the flag as given."""
    if record.get("sampler_used"):
        return record["sampler_used"]
    settings = Path(str(process_json).removesuffix(".process.json") + ".json")
    if settings.is_file():
        with_settings = read_json(settings, "predict.py")
        if with_settings.get("sampler_used"):
            return with_settings["sampler_used"]
    return str(record.get("sampler", "unknown sampler"))


def process_frames(process_json: Path, record: dict) -> list[dict]:
    """The frames of a --show_process file, each checked: a step and a list of tokens."""
    frames = record.get("frames")
    if not isinstance(frames, list) or not frames:
        raise UsageError(f"{process_json}: no 'frames' list; rerun predict.py --show_process")
    for index, frame in enumerate(frames):
        good = isinstance(frame, dict) and isinstance(frame.get("step"), int)
        if not good or not isinstance(frame.get("tokens"), list):
            raise UsageError(f"{process_json}: frame {index} has no step or tokens; rerun "
                             "predict.py --show_process")  # fmt: skip
    return frames
