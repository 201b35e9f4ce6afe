"""The GPU check's figures: what each step's output says (pytest's counts, the demo's bound
against the CPU demo's, torchrun's curve against one process's, the benchmarks' rows), and the
tests that have CUDA cases."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from common.files import iter_jsonl, read_json

REPO = Path(__file__).resolve().parents[1]

# The CPU demo's bound (its date, command and s.e. are in the file).
CPU_DEMO = REPO / "bench" / "results" / "cpu_demo_bound.json"

# A retrained model in bf16 with other noise draws must land within this many nats/token of
# it (about 4 of the CPU bound's standard errors, 0.0378).
DEMO_TOLERANCE = 0.15

# Logged losses of one process under torchrun against a plain run: relative difference.
DDP_TOLERANCE = 0.02


def device_test_files() -> list[str]:
    """The test files with a test that takes the ``device`` fixture."""
    pattern = re.compile(r"def test_\w+\([^)]*\bdevice\b", re.S)
    return sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "tests").glob("test_*.py")
        if pattern.search(path.read_text())
    )


def pytest_counts(out: Path, logs: list[str]) -> dict:
    """passed/failed/skipped/errors of pytest's summary line."""
    tail = logs[-1].strip().splitlines()[-1] if logs and logs[-1].strip() else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", tail)}
    return {
        "ok": counts.get("passed", 0) > 0 and not counts.get("failed") and not counts.get("error"),
        **counts,
        "summary": tail,
    }


def losses(log: Path) -> dict[int, float]:
    """Logged training loss by step from a train_log.jsonl."""
    rows = [row for _, row, _ in iter_jsonl(log)]
    return {r["step"]: r["loss"] for r in rows if isinstance(r, dict) and "loss" in r}


def check_demo(out: Path, logs: list[str]) -> dict:
    record = read_json(out / "demo" / "elbo_validation.json", "the demo's bound")
    given = record["given_length"]["nats_per_token"]
    full = record["full_sequence"]["nats_per_token"]
    truth = record["toy_oracle"]["true_nats_per_token"]
    curve = losses(out / "demo" / "train_log.jsonl")
    cpu = read_json(CPU_DEMO, "the CPU demo's bound")["given_length_nats_per_token"]
    return {
        "ok": abs(given - cpu) <= DEMO_TOLERANCE and full >= truth,
        "bound_given_length": given,
        "cpu_demo_bound": cpu,
        "tolerance": DEMO_TOLERANCE,
        "bound_full_sequence": full,
        "true_nats_per_token": truth,
        "first_loss": curve[min(curve)],
        "last_loss": curve[max(curve)],
    }


def check_torchrun(out: Path, logs: list[str]) -> dict:
    """The NCCL probe's line (first command), and the loss curves of main.py alone and under
    torchrun."""
    probe = json.loads(logs[0].strip().splitlines()[-1])
    single, ddp = (
        losses(out / "single" / "train_log.jsonl"),
        losses(out / "ddp" / "train_log.jsonl"),
    )
    worst = max(abs(ddp[s] - single[s]) / abs(single[s]) for s in single)
    return {
        "ok": probe["nccl_ok"] and set(single) == set(ddp) and worst <= DDP_TOLERANCE,
        **probe,
        "max_relative_loss_difference": worst,
        "tolerance": DDP_TOLERANCE,
        "steps_compared": len(single),
    }


def bench_rows(name: str) -> Callable[[Path, list[str]], dict]:
    """The rows this step appended to OUTDIR/bench.jsonl, by configuration."""

    def check(out: Path, logs: list[str]) -> dict:
        rows = [row for _, row, _ in iter_jsonl(out / "bench.jsonl")]
        mine = [r for r in rows if r.get("tag") == name]
        keep = (
            "tokens_per_s",
            "seconds",
            "peak_gib",
            "model_tflops",
            "matmul_peak_tflops",
            "mfu",
            "mfu_datasheet",
            "ratio",
            "speedup_vs_ancestral",
            "calls_per_sample",
        )
        return {
            "ok": bool(mine),
            "rows": {r["config"]: {k: r[k] for k in keep if k in r} for r in mine},
        }

    return check
