"""The paper's conditional claim on real English: is DiffusionBERT "of comparable quality and
more diverse" than an autoregressive baseline?

On wiki-keywords and wiki-next (built offline from wiki-summaries), for each seed: DiffusionBERT
(MiniLM, spindle off as the paper's conditional runs, time-agnostic, d3pm) and the
autoregressive twin (main.py --objective ar) at equal steps and batch; then, on the first
--sources test sources, DiffusionBERT's MBR over K candidates (with and without guidance) and
the twin's beam search and sampling with the same K and MBR. Every system is compared with
every baseline source by source (evaluation.compare_outputs), per seed and on the sources'
scores averaged over seeds. Every step leaves a file; the same command continues.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from common.cli import Parser
from common.errors import UsageError
from common.files import read_json, write_json
from common.precision import resolve_precision
from common.runtime import pick_device
from experiments.ablation.calls import call, guarded
from experiments.ablation.folders import check_run_precision, same_precision
from experiments.ablation.settings import seed_list
from experiments.ar_twin.run import finished

RESULTS = Path("experiments/seq2seq_wiki/results")
TASKS = ("wiki-keywords", "wiki-next")
# system name → (model kind, predict_downstream_condition.py flags beyond the shared ones)
SYSTEMS = {
    "diffusion-mbr": ("diffusion", ["--cfg_weight", 0]),
    "diffusion-mbr-guided": ("diffusion", ["--cfg_weight", 1.0]),
    "ar-beam": ("ar", ["--decoding", "beam", "--num_beams", 4, "--mbr_size", 1]),
    "ar-sample-mbr": ("ar", ["--decoding", "sample"]),
}
BASELINES = ("ar-beam", "ar-sample-mbr")


def build_parser() -> Parser:
    p = Parser(prog="python3 -m experiments.seq2seq_wiki", description=__doc__.splitlines()[0])
    a = p.flag
    a("--output", default=str(RESULTS), help="decodings, comparisons and the summary")
    a("--runs_dir", default="outputs/seq2seq-wiki", help="checkpoints of every run")
    a("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    a("--seeds", default="1,2", help="training seeds of both models")
    a("--max_steps", type=int, default=2000, help="optimizer steps of every run")
    a("--batch_size", type=int, default=32, help="pairs per step")
    a("--lr", type=float, default=3e-4, help="one learning rate for both models")
    a("--sources", type=int, default=200, help="test sources decoded")
    a("--mbr_size", type=int, default=4, help="K: candidates per source (MBR)")
    a("--sample_steps", type=int, default=64, help="diffusion: T' of decoding")
    a("--device", default="auto", help="auto, cpu, cuda")
    p.boolean(
        "--bf16",
        help="main.py --bf16: off by default, so that every run of the study computes in fp32 "
        "on every machine (a pair trained in different precisions is refused)",
    )
    a("--train_flags", default="", help='more main.py flags for every run, e.g. "--ema 0.99"')
    return p


def train(args: argparse.Namespace, task: str, kind: str, seed: int) -> Path:
    """main.py for one model, seed and task (resumed from its last/, skipped when done)."""
    run = Path(args.runs_dir) / f"{task}-{kind}-seed{seed}"
    check_run_precision(run, resolve_precision(args.bf16, pick_device(args.device)))
    if finished(run, args.max_steps):
        return run
    flags = [
        "--task", task, "--model_name_or_path", "minilm-l6", "--max_steps", args.max_steps,
        "--batch_size", args.batch_size, "--lr", args.lr, "--lr_schedule", "constant",
        "--warmup_steps", 100, "--seed", seed, "--max_length", 96, "--max_target_length", 48,
        "--dev_size", 256, "--eval_steps", 250, "--logging_steps", 50, "--output_dir", run,
        "--fitlog_dir", "", "--device", args.device, "--bf16", str(args.bf16).lower(),
        *shlex.split(args.train_flags),
    ]  # fmt: skip
    if kind == "ar":
        flags += ["--objective", "ar"]
    else:
        flags += ["--objective", "d3pm", "--word_freq_lambda", 0, "--timestep", "none"]
    if (run / "last" / "training_state.pt").is_file():
        flags += ["--resume_from", run / "last"]
    print(f"seq2seq_wiki: training {kind} on {task}, seed {seed} → {run}")
    call("main", *flags)
    return run


def decode(args: argparse.Namespace, task: str, system: str, seed: int, run: Path) -> Path:
    """predict_downstream_condition.py for one system; returns its metrics file."""
    out = Path(args.output) / "decodings" / f"{task}-{system}-seed{seed}"
    metrics = out / f"{task}_metrics.json"
    if not metrics.is_file():
        kind, extra = SYSTEMS[system]
        shared = ["--checkpoint", run / "best", "--task", task, "--split", "test",
                  "--max_examples", args.sources, "--mbr_size", args.mbr_size, "--topk", 0,
                  "--seed", seed, "--device", args.device, "--output_dir", out]  # fmt: skip
        if kind == "diffusion":
            shared += ["--num_steps", args.sample_steps, "--sampler", "cached"]
        flags = [*shared, *extra]
        if "--mbr_size" in extra:  # the system fixes its own K
            at = flags.index("--mbr_size")
            del flags[at : at + 2]
        call("predict_downstream_condition", *flags)
    return metrics


def compare(args: argparse.Namespace, name: str, a: Path, b: Path) -> dict:
    out = Path(args.output) / "compare" / f"{name}.json"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        call("evaluation.compare_outputs", a, b, "--json", out)
    return read_json(out, "comparison")


def study(args: argparse.Namespace) -> dict:
    """Train, decode and compare every task, seed and system; results.json collects it."""
    results: dict = {}
    for task in args.task_list:
        for seed in args.seed_list:
            for kind in ("ar", "diffusion"):
                train(args, task, kind, seed)
        for seed in args.seed_list:
            runs = {k: Path(args.runs_dir) / f"{task}-{k}-seed{seed}" for k in ("ar", "diffusion")}
            same_precision(runs)
            files = {s: decode(args, task, s, seed, runs[kind])
                     for s, (kind, _) in SYSTEMS.items()}  # fmt: skip
            entry = {"metrics": {s: str(f) for s, f in files.items()}, "compare": {}}
            for system in ("diffusion-mbr", "diffusion-mbr-guided"):
                for baseline in BASELINES:
                    name = f"{task}-seed{seed}-{system}-vs-{baseline}"
                    entry["compare"][name] = compare(args, name, files[system], files[baseline])
            results.setdefault(task, {})[f"seed{seed}"] = entry
        write_json(Path(args.output) / "results.json", results)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    args.task_list = [t for t in args.tasks.split(",") if t]
    if not args.task_list or set(args.task_list) - set(TASKS):
        p.error(f"--tasks {args.tasks!r}: choose from {', '.join(TASKS)}")
    try:
        args.seed_list = seed_list(args.seeds)
    except UsageError as error:
        p.error(str(error))
    for name in ("max_steps", "batch_size", "sources", "mbr_size", "sample_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be ≥ 1, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    def work() -> None:
        Path(args.output).mkdir(parents=True, exist_ok=True)
        study(args)
        from experiments.seq2seq_wiki.summary import write_summary

        write_summary(args.output)

    guarded("seq2seq_wiki", work)
