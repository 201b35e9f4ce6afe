"""The paper's ablation (Table 2) at small scale: every row trained at one equal budget, then
bounded and sampled the same way. Results: one JSON line per run in
<output>/results.jsonl, plus PNGs (bench/ablation_plots.py) and summary.md, the README's table
and orderings (bench/ablation_table.py).

bash run.sh ablation [flags]      (= python bench/ablation.py [flags])

A rerun skips the runs whose results exist and resumes a run whose last/ exists, so an
interrupted grid finishes when it is run again. --max_steps, --model_name_or_path and
--dataset scale it up on a GPU box (--dataset lm1b --model_name_or_path bert-base-uncased).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common.errors import UsageError  # noqa: E402
from common.files import read_jsonl, write_json, write_text  # noqa: E402


@dataclass(frozen=True)
class Row:
    """One row of the paper's Table 2 (plus one beyond it): initialisation, schedule, time
    design and objective. ``headline`` rows run with every seed of ``--seeds``."""

    name: str
    pretrained: bool
    spindle: bool
    timestep: str
    objective: str = "d3pm"
    headline: bool = False


# The grid, in one place. Paper (LM1B, per-word PPL bound): scratch (T−t+1)⁻¹ LTE 82.34,
# scratch spindle LTE 77.50, BERT (T−t+1)⁻¹ LTE 92.53 / PTE 79.95 / TAD 78.76, BERT spindle
# TAD 63.78. LTE = layerwise, PTE = token, TAD = none (time-agnostic).
GRID = (
    Row("scratch-mutual-layerwise", pretrained=False, spindle=False, timestep="layerwise"),
    Row("scratch-spindle-layerwise", pretrained=False, spindle=True, timestep="layerwise"),
    Row("pretrained-mutual-layerwise", pretrained=True, spindle=False, timestep="layerwise"),
    Row("pretrained-mutual-token", pretrained=True, spindle=False, timestep="token"),
    Row("pretrained-mutual-none", pretrained=True, spindle=False, timestep="none", headline=True),
    Row("pretrained-spindle-none", pretrained=True, spindle=True, timestep="none", headline=True),
    Row("pretrained-spindle-none-mdlm", True, spindle=True, timestep="none", objective="mdlm"),
)
PAPER_PPL = {
    "scratch-mutual-layerwise": 82.34,
    "scratch-spindle-layerwise": 77.50,
    "pretrained-mutual-layerwise": 92.53,
    "pretrained-mutual-token": 79.95,
    "pretrained-mutual-none": 78.76,
    "pretrained-spindle-none": 63.78,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a = p.add_argument
    a("--model_name_or_path", default="minilm-l6", help="the backbone of every row")
    a("--dataset", default="wiki-summaries", help="any --dataset of main.py")
    a("--output", default="bench/results/ablation", help="results, runs and pictures")
    a("--runs_dir", default="outputs/ablation", help="checkpoints of every run")
    a("--rows", default="", help="comma-separated row names (default: the whole grid)")
    a("--seeds", default="1,2,3", help="seeds of the headline rows (others: the first)")
    a("--max_steps", type=int, default=300, help="optimizer steps of every run")
    a("--eval_steps", type=int, default=50, help="dev bound every N steps")
    a("--dev_size", type=int, default=256, help="training sentences held out for the dev bound")
    a("--batch_size", type=int, default=32, help="sequences per step")
    a("--max_length", type=int, default=32, help="tokens per sequence")
    a("--lr", type=float, default=3e-4, help="one learning rate for every row")
    a("--warmup_steps", type=int, default=50, help="linear warm-up, then constant")
    a("--word_freq_lambda", type=float, default=0.3, help="λ of the spindle rows")
    a("--num_steps", type=int, default=2048, help="training T")
    a("--eval_step_size", type=int, default=16, help="S of the discrete bound (T/S terms)")
    a("--mc_samples", type=int, default=4, help="draws per sequence, continuous bound")
    a("--eval_examples", type=int, default=128, help="test sentences bounded")
    a("--num_samples", type=int, default=64, help="samples per run (top-k 30)")
    a("--sample_steps", type=int, default=128, help="T' of sampling")
    a("--table3_steps", default="16,32,64,128", help="ELBO steps T/S for the Table 3 analogue")
    a("--device", default="auto", help="auto, cpu, cuda")
    return p.parse_args(argv)


def call(script: str, *argv: str) -> None:
    """``script``'s main(argv) in this process; a non-zero exit raises RuntimeError."""
    module = importlib.import_module(script)
    try:
        module.main([str(a) for a in argv])
    except SystemExit as exit_info:
        if exit_info.code not in (0, None):
            command = f"{script}.py {' '.join(map(str, argv))}"
            raise RuntimeError(f"{command} exited {exit_info.code}") from None


def train(args: argparse.Namespace, row: Row, seed: int, run: Path, counts: Path) -> None:
    """main.py with the row's settings; resumes from ``run/last`` when an earlier try left it."""
    flags = [
        "--model_name_or_path", args.model_name_or_path, "--dataset", args.dataset,
        "--from_scratch", str(not row.pretrained).lower(), "--timestep", row.timestep,
        "--objective", row.objective, "--word_freq_lambda",
        args.word_freq_lambda if row.spindle else 0, "--word_freq_file", counts,
        "--num_steps", args.num_steps, "--hybrid_lambda", 0.01, "--max_steps", args.max_steps,
        "--batch_size", args.batch_size, "--max_length", args.max_length, "--lr", args.lr,
        "--lr_schedule", "constant", "--warmup_steps", args.warmup_steps, "--seed", seed,
        "--dev_size", args.dev_size, "--eval_steps", args.eval_steps, "--logging_steps", 50,
        "--output_dir", run, "--fitlog_dir", "", "--device", args.device,
    ]  # fmt: skip
    if (run / "last" / "training_state.pt").is_file():
        flags += ["--resume_from", run / "last"]
    call("main", *flags)


def bound(args: argparse.Namespace, run: Path, kind: str, step_size: int | None = None) -> dict:
    """compute_elbo.py on the test split; returns its JSON record."""
    out = run / f"elbo_{kind}{step_size or ''}.json"
    if not out.is_file():
        extra = ["--eval_step_size", step_size] if kind == "discrete" else []
        call("compute_elbo", "--checkpoint", run / "best", "--dataset", args.dataset,
             "--split", "test", "--bound", kind, "--mc_samples", args.mc_samples,
             "--max_examples", args.eval_examples, "--device", args.device, "--json", out,
             *extra)  # fmt: skip
    return json.loads(out.read_text())


def figures(record: dict) -> dict:
    """Per-word and per-token perplexity of a bound, with standard errors over sequences."""
    given = record["given_length"]
    n, words = given["num_sequences"], given["num_words"]
    nats_per_word = given["nats_per_sequence"] * n / words
    se_per_word = given["nats_per_sequence_se"] * n / words
    return {
        "ppl_per_word": given["ppl_per_word"],
        "nats_per_word": nats_per_word,
        "nats_per_word_se": se_per_word,
        "ppl_per_token": given["ppl_per_token"],
        "nats_per_token": given["nats_per_token"],
        "nats_per_token_se": given["nats_per_token_se"],
    }


def sample_metrics(args: argparse.Namespace, row: Row, run: Path) -> dict:
    """64 samples at the paper's top-k 30 (lengths from the corpus), scored against test."""
    samples, scores = run / "samples.txt", run / "metrics.json"
    if not scores.is_file():
        sampler = "cached" if row.timestep == "none" else "ancestral"
        call("predict", "--checkpoint", run / "best", "--num_samples", args.num_samples,
             "--batch_size", args.num_samples, "--num_steps", args.sample_steps,
             "--topk", 30, "--sampler", sampler, "--device", args.device,
             "--output", samples)  # fmt: skip
        call("compute_metric", "--generated", samples, "--dataset", args.dataset, "--split",
             "test", "--json", scores)  # fmt: skip
    metrics = json.loads(scores.read_text())
    return {k: metrics[k] for k in ("bleu", "self_bleu", "dist_1", "div_4") if k in metrics}


def dev_curve(run: Path) -> list[tuple[int, float]]:
    """(step, dev nats per token) of every dev evaluation in the run's training log."""
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return [(r["step"], r["dev_nats_per_token"]) for r in rows if "dev_nats_per_token" in r]


def run_one(args: argparse.Namespace, row: Row, seed: int, counts: Path) -> dict:
    run = Path(args.runs_dir) / f"{row.name}-seed{seed}"
    started = time.time()
    train(args, row, seed, run, counts)
    record = {
        "row": row.name,
        "seed": seed,
        "settings": {**asdict(row), **{k: v for k, v in vars(args).items() if k != "rows"}},
        "budget": {
            "steps": args.max_steps,
            "sequences_per_step": args.batch_size,
            "max_length": args.max_length,
        },
        "paper_ppl_per_word": PAPER_PPL.get(row.name),
        "discrete": figures(bound(args, run, "discrete", args.eval_step_size)),
        "continuous": figures(bound(args, run, "continuous")),
        "samples": sample_metrics(args, row, run),
        "dev_curve": dev_curve(run),
    }
    if row.name == "pretrained-spindle-none" and seed == int(args.seeds.split(",")[0]):
        record["table3"] = {
            steps: figures(bound(args, run, "discrete", args.num_steps // int(steps)))
            for steps in args.table3_steps.split(",")
        }
    record["wall_time_s"] = round(time.time() - started, 1)
    record["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    return record


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    wanted = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(wanted) - {row.name for row in GRID})
    if unknown:
        sys.exit(f"error: --rows: unknown {unknown}; choose from {[r.name for r in GRID]}")
    rows = [row for row in GRID if not wanted or row.name in wanted]
    seeds = [int(s) for s in args.seeds.split(",")]
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results = output / "results.jsonl"
    done = set()
    if results.is_file():
        try:
            done = {(r["row"], r["seed"]) for r in read_jsonl(results, "--output")}
        except UsageError as error:
            sys.exit(f"error: {error}")
    counts = Path(args.runs_dir) / "word_freq.pt"
    if not counts.is_file():
        call("word_freq", "--model_name_or_path", args.model_name_or_path, "--dataset",
             args.dataset, "--max_length", args.max_length, "--output", counts)  # fmt: skip
    for row in rows:
        for seed in seeds if row.headline else seeds[:1]:
            if (row.name, seed) in done:
                print(f"ablation: {row.name} seed {seed} done already, skipped")
                continue
            print(f"ablation: {row.name} seed {seed}")
            record = run_one(args, row, seed, counts)
            before = results.read_text() if results.is_file() else ""
            write_text(results, before + json.dumps(record) + "\n")
    from ablation_plots import write_pictures
    from ablation_table import summary

    with contextlib.suppress(FileNotFoundError):
        write_json(output / "pictures.json", write_pictures(results, output))
        write_text(output / "summary.md", summary(read_jsonl(results)))
    print(f"ablation: results in {results}")


if __name__ == "__main__":
    main()
