"""One ablation row's runs (a row name → its seeds' result lines, ``Rows``): means over seeds,
their spread, and the standard errors from the runs' per-sentence files."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from common.errors import UsageError
from evaluation.records import check_record
from evaluation.stats import ratio_se

Rows = dict[str, list[dict]]


def by_row(records: list[dict]) -> Rows:
    """{row name: its runs (one per seed)}, in the order of the results file."""
    rows: Rows = {}
    for record in records:
        rows.setdefault(record["row"], []).append(record)
    return rows


def having(runs: list[dict], field: str) -> list[dict]:
    """The runs that carry ``field`` (the discrete bound and the samples may be on a row's
    first seed only)."""
    return [run for run in runs if field in run]


def mean_nats_per_word(runs: list[dict], bound: str = "discrete") -> float:
    """Mean over the seeds that have it of a row's bound in nats per word (NaN: none has)."""
    values = [run[bound]["nats_per_word"] for run in having(runs, bound)]
    return statistics.fmean(values) if values else math.nan


def seed_range(runs: list[dict]) -> tuple[float, float]:
    """(min, max) over seeds of the discrete bound, nats per word."""
    values = [run["discrete"]["nats_per_word"] for run in having(runs, "discrete")]
    return (min(values), max(values)) if values else (math.nan, math.nan)


def sentence_record(run: dict, folder: Path | None, bound: str) -> dict | None:
    """One run's ``bound`` record with per-sentence values (its ``sentences_file`` beside the
    results), or None where the run predates them or lacks that bound."""
    name = run.get("sentences_file")
    if folder is None or not name:
        return None
    path = folder / name
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{path}: cannot be read ({error}); rerun `bash run.sh ablation`"
        ) from None
    record = stored.get(bound) if isinstance(stored, dict) else None
    if not record or not record.get("sentences"):
        return None
    check_record(record, f"{path} ({bound})")
    return record


def paired_bound(runs: list[dict], folder: Path | None) -> str:
    """The bound the paired intervals use: the one with the most sentences in the first run's
    per-sentence file (the cheaper continuous bound is run on more), discrete on a tie."""
    sizes = {}
    for bound in ("discrete", "continuous"):
        record = sentence_record(runs[0], folder, bound)
        sizes[bound] = len(record["sentences"]["id"]) if record else 0
    return "continuous" if sizes["continuous"] > sizes["discrete"] else "discrete"


def run_se(run: dict, folder: Path | None, bound: str = "discrete", unit: str = "word") -> float:
    """A run's standard error per word (or token) over its test sentences: the ratio
    estimator's from its per-sentence values where the results' folder has them, else the
    figure its record carries."""
    record = sentence_record(run, folder, bound) if folder is not None else None
    if record is None:
        return run[bound][f"nats_per_{unit}_se"]
    columns = record["sentences"]
    return ratio_se(columns["nats"], columns[f"{unit}s"])


def row_se(runs: list[dict], folder: Path | None, unit: str = "word") -> float:
    """Mean over a row's seeds of ``run_se`` (discrete bound)."""
    runs = having(runs, "discrete")
    if not runs:
        return math.nan
    return statistics.fmean(run_se(run, folder, "discrete", unit) for run in runs)
