"""Reading compute_elbo.py's JSON records back: one line naming the file and field when a
record cannot be used."""

from __future__ import annotations

import json
import math
from pathlib import Path

from common.errors import UsageError
from diffusion import ParameterError, TimeProposal

SENTENCE_FIELDS = ("id", "tokens", "words", "nats")
# A sentence's bound or count beyond these cannot come from compute_elbo.py (a sentence of
# 10⁶ tokens at the vocabulary's log size is under 10⁸ nats): a damaged or forged record.
MAX_NATS = 1e9
MAX_COUNT = 10**9


def read_record(path: str | Path, what: str = "") -> dict:
    """A compute_elbo.py --json record with its per-sentence values, checked.

    Raises UsageError naming the file (and ``what``, e.g. the flag) for a missing file, a
    truncated or non-JSON file, a record without per-sentence values (written by an older
    version) or with columns of different lengths.
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
    check_record(record, where)
    return record


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
    lengths = {field: len(sentences[field]) for field in SENTENCE_FIELDS}
    if len(set(lengths.values())) != 1:
        raise UsageError(f"{where}: the sentences columns differ in length {lengths}: truncated?")
    kinds = {"id": str, "tokens": int, "words": int, "nats": (int, float)}
    for field, kind in kinds.items():
        for number, value in enumerate(sentences[field], 1):
            bad = not isinstance(value, kind) or isinstance(value, bool)
            if not bad and field == "nats":
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
    if not isinstance(record.get("noise"), dict):
        raise UsageError(
            f"{where}: field noise is missing or not an object: rerun compute_elbo.py --json"
        )


def read_proposal(path: str | Path, what: str = "--proposal") -> TimeProposal:
    """The time proposal stored in a record of the ``importance`` estimator."""
    record = read_record(path, what)
    stored = record["noise"].get("proposal")
    if not stored:
        raise UsageError(
            f"{what} {path}: field noise.proposal is empty: that record was not made with "
            "--estimator importance"
        )
    try:
        return TimeProposal.from_dict(stored)
    except (KeyError, TypeError, ValueError, ParameterError) as error:
        raise UsageError(f"{what} {path}: field noise.proposal is damaged ({error})") from None
