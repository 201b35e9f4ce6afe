"""The GPU check: run by ``bash tools/gpu_check.sh OUTDIR`` (see docs/gpu.md).

In order, each step timed, its output appended to OUTDIR/gpu_check.log and its figures to
OUTDIR/gpu_check.json (rewritten after every step):
  wheels     install the wheels carried in .whl/ (datasets, fitlog, nltk, the MiniLM copy)
  tests      the CUDA cases of the device-following tests (pytest -m cuda)
  demo       the demo's training on CUDA in bf16 autocast and its bound, against the CPU demo
  torchrun   main.py under torchrun on NCCL (1 process; 2 on two GPUs) against one process
  bench-*    bench/bench.py train, elbo and sample at the paper's size in bf16, eager and
             compiled: tokens/s, peak memory, model FLOP utilisation
  sampling   ancestral, cached, rowcache and official at the paper's sampling setting
The steps share a budget (--budget, 470 s): a step that would start past it is recorded as
not run. Without CUDA it says so in one line, checks that every step's command parses
(argparse, and pytest's collection of the CUDA cases) and exits 0 (1 if one does not parse).

python3 -m tools.gpu_check --prepare [--wheels .whl]   # on a machine with pip: fill .whl/
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.checks import check_number, check_output_dir
from common.cli import Parser
from common.errors import exit_on_usage_error
from common.files import write_json
from tools.gpu_figures import (
    bench_rows,
    check_demo,
    check_torchrun,
    device_test_files,
    pytest_counts,
)
from tools.gpu_wheels import install_wheels, prepare
from training.presets import preset

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def words(text: str) -> list[str]:
    """A command line's words (shell quoting)."""
    return shlex.split(text)


# The demo's training (run.sh demo: training.presets), on CUDA with bf16 autocast.
DEMO_ARGS = [*preset("demo"), *words("--device cuda --bf16 --fitlog_dir '' --quiet")]
# The paper's size (bert-base architecture, bf16); its sampling: 64 tokens, T' = 512, top-k 30.
PAPER = words("--device cuda --preset bert-base --precision bf16")
TRAIN = [*PAPER, *words("--batch_size 128 --length 128 --repeats 5 --configs d3pm")]
ELBO = [*PAPER, *words("--batch_size 128 --length 128 --num_steps 2048 --step_size 16")]
SAMPLING = [*PAPER, *words("--batch_size 128 --length 64 --num_steps 512 --step_size 1 --topk 30")]


@dataclass
class Step:
    """One step: its commands (argv lists, run in order in the repository), the seconds it may
    take, and a check of its outputs returning figures (with ``ok``)."""

    name: str
    commands: list[list[str]]
    timeout: int
    check: Callable[[Path, list[str]], dict]


def gpus() -> int:
    import torch

    return min(torch.cuda.device_count(), 2)


def steps(out: Path) -> list[Step]:
    """Every step of the check, with OUTDIR ``out``."""
    demo, freq = out / "demo", str(out / "demo" / "word_freq.pt")
    elbo_json = str(demo / "elbo_validation.json")
    # the torchrun comparison: 60 steps, logged every 10
    short = [*DEMO_ARGS, "--word_freq_file", freq, *words("--max_steps 60 --logging_steps 10"),
             *words("--eval_steps 1000 --dev_size 32")]  # fmt: skip
    torchrun = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "NGPU"]
    found = [
        Step("tests", [[PY, *words("-m pytest -q -m cuda -p no:cacheprovider"),
                        *device_test_files()]], 150, pytest_counts),
        Step("demo", [
            [PY, "word_freq.py", *words("--model_name_or_path minilm-l6 --dataset toy"),
             "--output", freq],
            [PY, "main.py", *DEMO_ARGS, "--word_freq_file", freq, "--output_dir", str(demo)],
            [PY, "compute_elbo.py", "--checkpoint", str(demo / "best"),
             *words("--dataset toy --split validation --bound continuous --mc_samples 4"),
             *words("--max_examples 256 --device cuda --json"), elbo_json],
        ], 100, check_demo),
        Step("torchrun", [
            [*torchrun, "-m", "tools.gpu_check", "--nccl"],
            [PY, "main.py", *short, "--output_dir", str(out / "single")],
            [*torchrun, "main.py", *short, "--output_dir", str(out / "ddp")],
        ], 90, check_torchrun),
    ]  # fmt: skip
    results = ["--results", str(out / "bench.jsonl")]
    modes = {"train": TRAIN, "elbo": [*ELBO, "--repeats", "3"],
             "sample": [*SAMPLING, *words("--configs ancestral --repeats 2")]}  # fmt: skip
    for mode, args in modes.items():
        for compiled in (False, True):
            name = f"bench-{mode}{'-compiled' if compiled else ''}"
            command = [PY, "-m", "bench.bench", "--mode", mode, *args, *results, "--tag", name]
            command += ["--compile"] if compiled else []
            found.append(Step(name, [command], 120 if compiled else 60, bench_rows(name)))
    table = [PY, "-m", "bench.bench", "--mode", "sample", *SAMPLING, "--no-replay", "--repeats",
             "1", *results, "--tag", "sampling"]  # fmt: skip
    found.append(Step("sampling", [table], 120, bench_rows("sampling")))
    return found


@functools.cache
def parser_of(target: str) -> argparse.ArgumentParser:
    """The parser of one of the project's scripts (``main.py``) or modules (``bench.bench``)."""
    return importlib.import_module(target.removesuffix(".py")).build_parser()


def parses(command: list[str]) -> str | None:
    """None when the command's arguments parse, else why not (one line)."""
    args = command[1:]
    if args[:2] == ["-m", "pytest"]:
        done = subprocess.run(
            [PY, *args, "--collect-only"], cwd=REPO, capture_output=True, text=True, check=False
        )
        collected = re.search(r"(\d+)/\d+ tests collected|(\d+) tests? collected", done.stdout)
        if done.returncode or not collected:
            return f"pytest collected no CUDA case: {done.stdout.strip()[-300:]}"
        return None
    if args[:2] == ["-m", "torch.distributed.run"]:
        from torch.distributed.run import get_args_parser

        start = next(i for i, a in enumerate(args) if i >= 2 and (a.endswith(".py") or a == "-m"))
        script = start + 1 if args[start] == "-m" else start
        launcher = [a.replace("NGPU", "1") for a in args[2 : script + 1]]
        if get_args_parser().parse_args(launcher).training_script != args[script]:
            return f"torchrun does not run {args[script]}"
        args = args[script:]
    elif args[:1] == ["-m"]:
        args = args[1:]
    try:
        parser_of(args[0]).parse_args(args[1:])
    except SystemExit as stop:
        return f"{args[0]} does not parse (exit {stop.code})" if stop.code else None
    return None


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def run_step(step: Step, out: Path, log, seconds_left: float) -> dict:
    record = {"name": step.name, "commands": [" ".join(c) for c in step.commands]}
    if seconds_left < 20:
        return {**record, "ok": False, "ran": False, "why": "out of the time budget"}
    started, outputs, rc = time.perf_counter(), [], 0
    for template in step.commands:
        command = [a.replace("NGPU", str(gpus())) for a in template]
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        left = min(step.timeout, seconds_left) - (time.perf_counter() - started)
        try:
            done = subprocess.run(
                command, cwd=REPO, capture_output=True, text=True, timeout=max(left, 1), check=False
            )
            rc, stdout, stderr = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as stop:
            rc, stdout, stderr = 124, _text(stop.stdout), _text(stop.stderr) + "\ntimed out\n"
        log.write(stdout + stderr)
        outputs.append(stdout)
        if rc:
            break
    record.update({"ran": True, "rc": rc, "seconds": round(time.perf_counter() - started, 1)})
    try:
        figures = step.check(out, outputs) if rc == 0 else {"ok": False}
    except (OSError, KeyError, ValueError, ZeroDivisionError) as error:
        figures = {"ok": False, "why": f"{type(error).__name__}: {error}"}
    return {**record, **figures}


def dry_run(out: Path, lead: str = "") -> int:
    """Parse every step's commands; 0 when all parse. One line (``lead`` first), and one more
    per command that does not parse."""
    bad = 0
    report = []
    for step in steps(out):
        problems = [p for p in map(parses, step.commands) if p]
        report.append({"name": step.name, "parsed": not problems, "problems": problems})
        bad += bool(problems)
        for problem in problems:
            print(f"{step.name}: {problem}")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "gpu_check.json", {"cuda": False, "dry_run": report})
    print(f"{lead}dry run: the commands of {len(report) - bad} of {len(report)} steps parse "
          f"({out / 'gpu_check.json'})")  # fmt: skip
    return 1 if bad else 0


def nccl_probe() -> int:
    """Under torchrun: an NCCL process group over this rank's GPU, an all_reduce and the
    all_gather_object that a checkpoint's RNG states use; rank 0 prints one JSON line."""
    import torch
    import torch.distributed as dist

    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    total = torch.full((4,), rank + 1.0, device="cuda")
    dist.all_reduce(total)
    ranks = [None] * world
    dist.all_gather_object(ranks, rank)
    ok = bool((total == world * (world + 1) / 2).all()) and ranks == list(range(world))
    if rank == 0:
        print(json.dumps({"nccl_processes": world, "nccl_ok": ok}))
    dist.destroy_process_group()
    return 0 if ok else 1


def build_parser() -> Parser:
    p = Parser(prog="bash tools/gpu_check.sh", description=__doc__)
    p.add_argument("outdir", nargs="?", help="where the JSON, the log and the runs go")
    p.flag("--budget", type=float, default=470, help="seconds for all steps")
    p.boolean("--dry-run", help="only parse every command")
    p.boolean("--prepare", help="fill --wheels with pip download")
    p.flag("--wheels", default=".whl", help="the wheels folder, in the repository unless absolute")
    p.boolean("--nccl", help="under torchrun: the NCCL probe")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.nccl:
        return nccl_probe()
    if args.prepare:
        prepare(REPO / args.wheels)
        return 0
    if not args.outdir:
        p.error("OUTDIR is required (bash tools/gpu_check.sh OUTDIR)")
    check_number("--budget", args.budget, 1, 10**6)
    out = check_output_dir(Path(args.outdir), "OUTDIR").resolve()
    import torch

    if args.dry_run or not torch.cuda.is_available():
        lead = "" if args.dry_run else "no CUDA device, nothing measured; "
        return dry_run(out, lead)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(),
        "gpus": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "steps": [],
    }
    with (out / "gpu_check.log").open("a") as log:
        begin = time.perf_counter()
        summary["steps"].append(
            {
                "name": "wheels",
                **install_wheels(log),
                "seconds": round(time.perf_counter() - begin, 1),
            }
        )
        for step in steps(out):
            left = args.budget - (time.perf_counter() - started)
            record = run_step(step, out, log, left)
            summary["steps"].append(record)
            figures = {k: v for k, v in record.items() if k not in ("commands", "rows")}
            print(f"{step.name}: {json.dumps(figures)}", flush=True)
            write_json(out / "gpu_check.json", summary)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out / "gpu_check.json", summary)
    failed = [s["name"] for s in summary["steps"] if not s.get("ok")]
    print(
        f"gpu check: {summary['seconds']} s; "
        + (f"not ok: {', '.join(failed)}" if failed else "every step ok")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
