"""Reading compute_elbo.py's JSON records back: one line naming the file and field when a
record cannot be used."""

from __future__ import annotations

import json
import math
from pathlib import Path

from common.errors import UsageError
from diffusion import ParameterError, TimeProposal

SENTENCE_FIELDS = ("id", "tokens", "words", "nats")
OPTIONAL_FIELDS = ("length_nats",)  # −log p(length) per sentence, where the model has one
# A sentence's bound or count beyond these cannot come from compute_elbo.py (a sentence of
# 10⁶ tokens at the vocabulary's log size is under 10⁸ nats): a damaged or forged record.
MAX_NATS = 1e9
MAX_COUNT = 10**9
GRID_BOUNDS = ("continuous", "discrete")  # the bounds of a grid run's per-sentence file
BOUND_HELP = (
    "which bound to read from a grid run's per-sentence file "
    "(experiments/ablation/results/sentences/*.json hold both); compute_elbo.py records are "
    "read as they are"
)


def read_record(path: str | Path, what: str = "", bound: str | None = None) -> dict:
    """A compute_elbo.py --json record with its per-sentence values, checked; from a grid
    run's per-sentence file (``experiments.ablation``: {"continuous": record, "discrete":
    record}) the record of ``bound``.

    Raises UsageError naming the file (and ``what``, e.g. the flag) for a missing file, a
    truncated or non-JSON file, a grid file without ``bound`` (or without that bound), a
    record without per-sentence values (written by an older version) or with columns of
    different lengths.
    """
    path = Path(path)
    where = f"{what} {path}".strip()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{where}: cannot be read ({error})") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{where}: not a complete JSON record (line {error.lineno}, column {error.colno}: "
            f"{error.msg}); it may be truncated: rerun compute_elbo.py --json"
        ) from None
    record = grid_bound(record, where, bound)
    check_record(record, where)
    return record


def grid_bound(stored: object, where: str, bound: str | None) -> object:
    """The record of ``bound`` from a grid run's per-sentence file; a compute_elbo.py record
    as it is (one bound already), refused when ``bound`` names the other one."""
    names = sorted(stored) if isinstance(stored, dict) else []
    if "given_length" in names or not names or not set(names) <= set(GRID_BOUNDS):
        kind = stored.get("bound") if isinstance(stored, dict) else None
        if bound and kind in GRID_BOUNDS and kind != bound:
            raise UsageError(f"{where}: a record of the {kind} bound, not --bound {bound}")
        return stored
    held = [name for name in names if isinstance(stored[name], dict)]
    if bound not in held:
        given = f"has no {bound} bound" if bound else "is a grid run's per-sentence file"
        raise UsageError(
            f"{where}: {given} (it holds the {' and the '.join(held) or 'no'} bound; with "
            "--checkpoint_figures first only a row's first seed has the discrete one): "
            f"evaluation.compare and evaluation.recipes read it with --bound "
            f"{' or --bound '.join(held or GRID_BOUNDS)}"
        )
    return stored[bound]


def check_record(record: object, where: str) -> None:
    """UsageError naming ``where`` and the field unless ``record`` is a usable record with
    per-sentence values (see ``read_record``)."""
    if not isinstance(record, dict) or "given_length" not in record:
        raise UsageError(f"{where}: not a compute_elbo.py --json record (no given_length)")
    sentences = record.get("sentences")
    if sentences is not None and not isinstance(sentences, dict):
        raise UsageError(
            f"{where}: field sentences is a {type(sentences).__name__}, not the table of "
            "columns (id, tokens, words, nats) that compute_elbo.py --json writes: a damaged "
            "record; rerun compute_elbo.py --json"
        )
    if sentences is None:
        raise UsageError(
            f"{where}: field sentences is missing: the record has no per-sentence values (an "
            "older compute_elbo.py wrote it); rerun compute_elbo.py --json"
        )
    missing = [field for field in SENTENCE_FIELDS if not isinstance(sentences.get(field), list)]
    if missing:
        raise UsageError(f"{where}: field sentences.{missing[0]} is missing or not a list")
    optional = [field for field in OPTIONAL_FIELDS if field in sentences]
    if any(not isinstance(sentences[field], list) for field in optional):
        raise UsageError(f"{where}: field sentences.{optional[0]} is not a list: a damaged record")
    lengths = {field: len(sentences[field]) for field in (*SENTENCE_FIELDS, *optional)}
    if len(set(lengths.values())) != 1:
        raise UsageError(f"{where}: the sentences columns differ in length {lengths}: truncated?")
    kinds = {"id": str, "tokens": int, "words": int, "nats": (int, float),
             "length_nats": (int, float)}  # fmt: skip
    for field in (*SENTENCE_FIELDS, *optional):
        kind = kinds[field]
        for number, value in enumerate(sentences[field], 1):
            bad = not isinstance(value, kind) or isinstance(value, bool)
            if not bad and field in ("nats", "length_nats"):
                bad = not math.isfinite(value) or abs(value) > MAX_NATS
            elif not bad and field != "id":
                bad = not 0 <= value <= MAX_COUNT
            if bad:
                raise UsageError(
                    f"{where}: field sentences.{field}, entry {number}, is {value!r}: a damaged "
                    "record; rerun compute_elbo.py --json"
                )
    if len(set(sentences["id"])) != len(sentences["id"]):
        raise UsageError(f"{where}: field sentences.id repeats an id: a damaged record")
    if not is_exact(record) and not isinstance(record.get("noise"), dict):
        raise UsageError(
            f"{where}: field noise is missing or not an object: rerun compute_elbo.py --json"
        )


def is_exact(record: dict) -> bool:
    """Whether ``record`` is an exact NLL (the autoregressive twin's), not a bound."""
    return record.get("bound") == "exact"


def full_sequence_nats(record: dict, where: str) -> list[float]:
    """Per sentence, the NLL of the whole sequence, length included: an exact record's
    ``nats``; a bound's ``nats`` + ``length_nats`` (one line naming ``where`` when the record
    has no length term)."""
    sentences = record["sentences"]
    if is_exact(record):
        return list(sentences["nats"])
    if "length_nats" not in sentences:
        raise UsageError(
            f"{where}: field sentences.length_nats is missing: the record has no per-sentence "
            "−log p(length), which pairing a bound with an exact NLL needs (the checkpoint has "
            "no length histogram, or an older compute_elbo.py wrote the record); rerun "
            "compute_elbo.py --json"
        )
    return [n + m for n, m in zip(sentences["nats"], sentences["length_nats"], strict=True)]


def read_proposal(path: str | Path, what: str = "--proposal") -> TimeProposal:
    """The time proposal stored in a record of the ``importance`` estimator."""
    record = read_record(path, what)
    stored = (record.get("noise") or {}).get("proposal")
    if not stored:
        raise UsageError(
            f"{what} {path}: field noise.proposal is empty: that record was not made with "
            "--estimator importance"
        )
    try:
        return TimeProposal.from_dict(stored)
    except (KeyError, TypeError, ValueError, ParameterError) as error:
        raise UsageError(f"{what} {path}: field noise.proposal is damaged ({error})") from None
