"""The grid's bookkeeping on disk: which runs are finished (the results file), a run folder
made ready to (re)start after a crash or a kill, and the precision runs trained in (the studies
compare only runs that computed alike)."""

from __future__ import annotations

import json
from pathlib import Path

from common.errors import UsageError
from common.files import RUN_LOCK, iter_jsonl, locked_by_another, read_json, read_jsonl
from models import load_training_state
from training.run_dir import discard, existing_run


def finished_runs(results: Path) -> set[tuple[str, int]]:
    """(row, seed) of every line of ``results.jsonl``; a line without a row name or an integer
    seed is one ``UsageError`` naming the file and line."""
    done: set[tuple[str, int]] = set()
    if not results.is_file():
        return done
    for number, record, _ in iter_jsonl(results, "--output"):
        row = record.get("row") if isinstance(record, dict) else None
        seed = record.get("seed") if isinstance(record, dict) else None
        if not isinstance(row, str) or not isinstance(seed, int) or isinstance(seed, bool):
            raise UsageError(
                f"--output {results}:{number}: a results line needs 'row' (a row name) and "
                "'seed' (an integer); fix or delete that line (its run is then repeated)"
            )
        done.add((row, seed))
    return done


def _json_object(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


def check_run_folder(run: Path) -> None:
    """Make a run folder that is not in the results ready to (re)start: torn derived results
    (``elbo_*.json``, ``metrics.json``) are removed and computed again; a ``.last.old`` left by
    a kill between a save's two renames becomes ``last/``; a ``last/`` to resume must hold a
    readable ``training_state.pt`` (else one line); a run killed before its first save (a log,
    no ``last/``) is cleared so that it starts again. A folder in use by a run is refused."""
    if not run.is_dir():
        return
    if locked_by_another(run / RUN_LOCK):
        raise UsageError(f"{run} is in use by a running main.py; wait for it or stop it")
    for derived in [*sorted(run.glob("elbo_*.json")), run / "metrics.json"]:
        if derived.is_file() and not _json_object(derived):
            derived.unlink()
            print(f"ablation: {derived} was torn; it is computed again")
    last, old = run / "last", run / ".last.old"
    if not last.exists() and (old / "training_state.pt").is_file():
        old.rename(last)
    if (last / "training_state.pt").is_file():
        try:
            load_training_state(last)
        except UsageError as error:
            raise UsageError(f"{error}; or delete {run} to train that run again") from None
        return
    leftovers = existing_run(run)
    if leftovers:
        discard(run, leftovers)
        print(f"ablation: {run} held {', '.join(leftovers)} but no last/ to resume (killed "
              "before its first save); cleared, the run starts again")  # fmt: skip


def trained_precision(run: Path) -> str | None:
    """The precision the run's training really ran in (``training_args.json``
    ``resolved.precision`` of its best checkpoint; None for a run older than that field)."""
    args = run / "best" / "training_args.json"
    if not args.is_file():
        return None
    data = read_json(args, "training_args")
    resolved = data.get("resolved") if isinstance(data, dict) else None
    return resolved.get("precision") if isinstance(resolved, dict) else None


def same_precision(runs: dict[str, Path]) -> str | None:
    """The precision every run of ``runs`` (name → run folder) trained in; one
    ``UsageError`` naming them when they differ (a compared pair must compute alike)."""
    found = {name: trained_precision(run) for name, run in runs.items()}
    found = {name: p for name, p in found.items() if p is not None}  # older runs: unknown
    if len(set(found.values())) > 1:
        listed = ", ".join(f"{name} {runs[name]} in {p}" for name, p in found.items())
        raise UsageError(f"runs trained in different precisions: {listed}; train them again "
                         "with the same --bf16 (fp32 everywhere by default)")  # fmt: skip
    return next(iter(found.values()), None)


def check_precision(results: Path, precision: str) -> None:
    """One ``UsageError`` when ``results`` already holds runs trained in another precision
    than ``precision`` (a recipe's seeds and the rows compared must compute alike)."""
    if not results.is_file():
        return
    other = sorted(
        {
            r.get("precision")
            for r in read_jsonl(results)
            if r.get("precision") not in (None, precision)
        }
    )
    if other:
        flag = (
            "--bf16 (on a machine that computes bf16 natively)"
            if precision == "fp32"
            else "--no-bf16"
        )
        raise UsageError(
            f"--output {results} holds runs trained in {', '.join(other)}; this machine would "
            f"train in {precision}; pass {flag} or a new "
            "--output"
        )


def check_run_precision(run: Path, precision: str) -> None:
    """One ``UsageError`` when ``run`` holds a checkpoint trained in another precision than
    ``precision`` (checked before a study trains, resumes or pairs it, not after hours of
    work on its partner)."""
    found = trained_precision(run)
    if found not in (None, precision):
        flag = "--bf16" if found == "bf16" else "--no-bf16"
        raise UsageError(f"{run} trained in {found}, this study trains in {precision}; pass "
                         f"{flag} or a new --runs_dir")  # fmt: skip
