"""Host cost of the data pipeline at LM1B scale (python3 -m bench.bench --mode data).

python3 -m bench.bench --mode data [--num_examples N]

A child process writes N synthetic tokenised rows (lengths ~ 1 + Gamma(4, 6.5), mean ~27
wordpieces like LM1B's, clipped to 128; ids uniform below 30522) in the token cache's on-disk
format (corpora/cache.py) to a temporary folder. This process then times what main.py does:
load the cache memory-mapped, hold out a dev set, build the BatchPlan, and fetch micro-batches
of 128 rows (training.data.fetch). Reports, as one JSON line appended to
bench/results/data.jsonl:

* host_ms_per_step: median host time of one micro-batch at a random step of an epoch
  (BatchPlan.indices + fetch), plus the epoch's permutation amortised over its steps;
* first_step_s: from opening the cached ids to the first batch (dev hold-out, first
  permutation and the reader's views included);
* peak_gib: this process's peak RSS (the writer is another process), which counts the
  memory-mapped pages of the ids it has touched; anon_gib / file_gib: anonymous and
  file-backed resident memory at the end; token_ids_gib: the size of the cached ids on disk.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import numpy as np

from bench.harness import REPO, RESULTS, append_results
from common.cli import Parser

VOCAB = 30522
MAX_LENGTH = 128
MICRO_BATCH = 128


def write(path: Path, num_examples: int, seed: int = 0) -> None:
    """The synthetic rows, in chunks of 2M, saved as a token cache entry at ``path``."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    from corpora.cache import write_cache

    rng = np.random.default_rng(seed)
    batches = []
    for start in range(0, num_examples, 2_000_000):
        n = min(2_000_000, num_examples - start)
        lengths = np.clip(1 + rng.gamma(4.0, 6.5, n).astype(np.int32), 1, MAX_LENGTH)
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int32)])
        values = rng.integers(1000, VOCAB, int(offsets[-1]), dtype=np.uint16)
        column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
        batches.append(pa.RecordBatch.from_arrays([column], names=["input_ids"]))
    table = InMemoryTable(pa.Table.from_batches(batches))
    record = {"synthetic": num_examples, "seed": seed, "max_length": MAX_LENGTH}
    write_cache(datasets.Dataset(table), path, record, key="synthetic")


def resident_gib() -> dict:
    """Current anonymous and file-backed (mapped, shared, reclaimable) resident memory, GiB;
    {} where /proc is missing."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    fields = {
        line.split(":")[0]: line.split()[1]
        for line in lines
        if line.startswith(("RssAnon:", "RssFile:"))
    }
    return {
        f"{key[3:].lower()}_gib": int(fields[key]) / 2**20
        for key in ("RssAnon", "RssFile")
        if key in fields
    }


def measure(path: Path, steps: int, dev_size: int, seed: int = 0) -> dict:
    import torch

    from corpora.cache import load_cache
    from training.batches import BatchPlan
    from training.data import fetch, holdout

    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_cache(path, "synthetic")
    train, _ = holdout(data, dev_size, seed)
    plan = BatchPlan(len(train), MICRO_BATCH, 1, 1, seed)
    x0, _ = fetch(train, plan.indices(0, 0, 0), 0)
    first_step = time.perf_counter() - start
    assert x0.shape[0] == MICRO_BATCH

    permute = time.perf_counter()
    plan.order(1)
    permutation_s = time.perf_counter() - permute
    rng = np.random.default_rng(seed)
    times = []
    for step in rng.integers(plan.steps_per_epoch, 2 * plan.steps_per_epoch, steps).tolist():
        tick = time.perf_counter()
        fetch(train, plan.indices(step, 0, 0), 0)
        times.append(time.perf_counter() - tick)
    files = [Path(f["filename"]) for f in data.cache_files]
    return {
        "num_examples": len(data),
        "tokens": int(sum(len(c.values) for c in data.data.column("input_ids").chunks)),
        "host_ms_per_step": 1e3 * (statistics.median(times) + permutation_s / plan.steps_per_epoch),
        "fetch_ms_p90": 1e3 * float(np.quantile(times, 0.9)),
        "epoch_permutation_s": permutation_s,
        "first_step_s": first_step,
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        **resident_gib(),
        "token_ids_gib": sum(f.stat().st_size for f in files) / 2**30,
    }


def build_parser() -> Parser:
    p = Parser(prog="python3 -m bench.data", description=__doc__)
    a = p.flag
    a("--num_examples", type=int, default=30_000_000, help="rows of the synthetic token table")
    a("--steps", type=int, default=2000, help="timed micro-batches")
    a("--dev_size", type=int, default=1000, help="held-out rows, as main.py's default")
    a("--write", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.write is not None:
        write(args.write, args.num_examples)
        return
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        path = Path(tmp) / "tokens"
        tick = time.perf_counter()
        command = [sys.executable, "-m", "bench.data", "--num_examples", str(args.num_examples),
                   "--write", str(path)]  # fmt: skip
        subprocess.run(command, check=True, cwd=REPO)
        write_s = time.perf_counter() - tick
        row = measure(path, args.steps, args.dev_size)
    row["write_s"] = write_s
    append_results(RESULTS / "data.jsonl", [row], ["bench.bench", "--mode", "data", *(argv or [])])
    print(json.dumps(row))


if __name__ == "__main__":
    main()
