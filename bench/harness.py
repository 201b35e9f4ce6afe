"""The benchmarks' harness: turn-taking timings, their ratio, peak memory, precision, processes."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from bench.flops import sync
from common.errors import UsageError
from common.machine import describe_machine
from common.precision import resolve_precision

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"  # one JSON-lines file per benchmark


def interleaved(fns: dict, device: torch.device, repeats: int, warmup: int = 2) -> dict:
    """Seconds of each callable, ``repeats`` rounds after ``warmup`` rounds, the callables
    taking turns within a round so that a drift in the machine's speed hits them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(times: list[float], baseline: list[float]) -> float:
    """Median over rounds of time / baseline time of the same round (robust to drift)."""
    return statistics.median(a / b for a, b in zip(times, baseline, strict=True))


def peak_memory(device: torch.device) -> float:
    """GiB: CUDA max allocated, else this process's max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def precision_of(args) -> str:
    """fp32 or bf16: --precision, where auto is what the scripts' default ``--bf16`` computes
    (``common.precision.resolve_precision``: bf16 where the device computes it natively)."""
    if args.precision == "both":
        raise UsageError("--precision both is for --mode train; pass fp32, bf16 or auto")
    if args.precision != "auto":
        return args.precision
    return resolve_precision(True, torch.device(args.device))


def precisions_of(args) -> list[str]:
    """The precisions a training bench times: fp32 and bf16 for --precision both."""
    return ["fp32", "bf16"] if args.precision == "both" else [precision_of(args)]


def step_key(name: str, precision: str, precisions: list[str]) -> str:
    """A training configuration's name in the timing table: ``d3pm``, or ``d3pm@bf16`` when
    more than one precision takes turns."""
    return name if len(precisions) == 1 else f"{name}@{precision}"


def in_subprocess(config: str) -> dict:
    """Run one configuration in a fresh process (its own peak memory); its JSON result."""
    command = [sys.executable, "-m", "bench.bench", *sys.argv[1:], "--config", config]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode:
        sys.exit(f"{config} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def append_results(path: Path, rows: list[dict], command: list[str], **stamp) -> None:
    """Append ``rows`` to the JSON-lines file ``path`` (old lines plus the new, written to a
    temporary file and renamed), each stamped with the date, this machine
    (``describe_machine``; ``machine=`` overrides), ``python3 -m`` and ``command``'s words,
    and ``stamp``'s other fields."""
    head = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": stamp.pop("machine", None) or describe_machine(stamp.pop("device", "cpu")),
            "command": " ".join(["python3", "-m", *command]), **stamp}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.is_file() else ""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(old + "".join(json.dumps({**head, **row}) + "\n" for row in rows))
    tmp.replace(path)
