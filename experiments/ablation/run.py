"""The paper's ablation (Table 2) at small scale: every row trained at one equal budget, then
bounded and sampled the same way. Results: one JSON line per run in
<output>/results.jsonl, plus PNGs (experiments.ablation.plots) and summary.md, the README's
table and orderings (experiments.ablation.table).

bash run.sh ablation [flags]      (= nice python3 -m experiments.ablation [flags])

A rerun skips the runs whose results exist and resumes a run whose last/ exists, so an
interrupted grid finishes when it is run again. --max_steps, --model_name_or_path and
--dataset scale it up on a GPU box (--dataset lm1b --model_name_or_path bert-base-uncased).
The scripts run as subprocesses (python3 main.py ...), each with its own one-line errors.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from common.errors import UsageError
from common.files import (
    iter_jsonl,
    json_text,
    read_json,
    read_jsonl,
    write_json,
    write_text,
)
from common.machine import describe_machine
from common.precision import resolve_precision
from common.runtime import pick_device
from experiments.ablation.calls import call, guarded
from experiments.ablation.folders import (
    check_precision,
    check_run_folder,
    finished_runs,
    trained_precision,
)
from experiments.ablation.grid import GRID, PAPER_PPL, Row
from experiments.ablation.settings import parse_args, seed_list

REPO = Path(__file__).resolve().parents[2]


def train(
    args: argparse.Namespace, row: Row, seed: int, run: Path, counts: Path, extra: tuple = ()
) -> None:
    """main.py with the row's settings (and ``extra`` flags); resumes from ``run/last`` when an
    earlier try left it."""
    flags = [
        "--model_name_or_path", args.model_name_or_path, "--dataset", args.dataset,
        "--from_scratch", str(not row.pretrained).lower(), "--timestep", row.timestep,
        "--objective", row.objective, "--word_freq_lambda",
        args.word_freq_lambda if row.spindle else 0, "--word_freq_file", counts,
        "--num_steps", args.num_steps, "--max_steps", args.max_steps,
        "--batch_size", args.batch_size, "--max_length", args.max_length, "--lr", args.lr,
        "--lr_schedule", "constant", "--warmup_steps", args.warmup_steps, "--seed", seed,
        "--data_seed", args.data_seed,
        "--dev_size", args.dev_size, "--eval_steps", args.eval_steps, "--logging_steps", 50,
        "--output_dir", run, "--fitlog_dir", "", "--device", args.device,
        "--group_by_length", str(args.group_by_length).lower(), "--bf16", str(args.bf16).lower(),
    ]  # fmt: skip
    if row.objective == "d3pm":
        flags += ["--hybrid_lambda", 0.01]
    flags += list(extra)
    if (run / "last" / "training_state.pt").is_file():
        flags += ["--resume_from", run / "last"]
    call("main", *flags)


def bound(
    args: argparse.Namespace, run: Path, kind: str, noise_seed: int, step_size: int | None = None
) -> dict:
    """compute_elbo.py on the test split with noise seed ``noise_seed``; returns its JSON
    record."""
    out = run / f"elbo_{kind}{step_size or ''}.json"
    if not out.is_file():
        if kind == "discrete":
            extra = ["--eval_step_size", step_size]
        else:
            extra = ["--mc_samples", args.mc_samples, "--estimator", args.estimator]
        examples = args.discrete_examples if kind == "discrete" else args.eval_examples
        if examples:
            extra += ["--max_examples", examples]
        call("compute_elbo", "--checkpoint", run / "best", "--dataset", args.dataset,
             "--split", "test", "--bound", kind, "--seed", noise_seed,
             "--device", args.device, "--json", out, *extra)  # fmt: skip
    return read_json(out, "bound record")


def noise_seed(seed: int) -> int:
    """The bounds' noise seed of every run trained with ``seed``: the two runs of a pair share
    it (common random numbers within the pair), the pairs of other seeds do not (independent
    noise across seeds, so a recipe-level interval may treat them as independent)."""
    return seed


def figures(record: dict) -> dict:
    """Per-word and per-token perplexity of a bound, with the ratio estimator's standard
    errors over sequences."""
    given = record["given_length"]
    n, words = given["num_sequences"], given["num_words"]
    nats_per_word = given["nats_per_sequence"] * n / words
    se_per_word = given["nats_per_word_se"]
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
    metrics = read_json(scores, "metrics")
    return {k: metrics[k] for k in ("bleu", "self_bleu", "dist_1", "div_4") if k in metrics}


def dev_curve(run: Path) -> list[tuple[int, float]]:
    """(step, dev nats per token) of every dev evaluation in the run's training log."""
    rows = [row for _, row, _ in iter_jsonl(run / "train_log.jsonl", "train_log")]
    return [(r["step"], r["dev_nats_per_token"]) for r in rows
            if isinstance(r, dict) and "dev_nats_per_token" in r]  # fmt: skip


def write_sentences(args: argparse.Namespace, row: Row, seed: int, *records: dict) -> str:
    """Both bounds' per-sentence values and noise settings in a file beside results.jsonl
    (``sentences/<row>-seed<seed>.json``, its name relative to the results' folder), so that
    experiments.ablation.table can pair any two runs sentence by sentence."""
    name = f"sentences/{row.name}-seed{seed}.json"
    keep = ("dataset", "split", "bound", "protocol", "num_steps", "eval_step_size", "noise",
            "given_length", "sentences")  # fmt: skip
    write_json(Path(args.output) / name, {r["bound"]: {k: r.get(k) for k in keep} for r in records})
    return name


def seeds_of(row: Row, args: argparse.Namespace) -> list[int]:
    """The training seeds of ``row``: --headline_seeds for the headline pair, --seeds for the
    paper's other rows, the first of --seeds beyond the paper."""
    if row.name not in PAPER_PPL:
        return seed_list(args.seeds)[:1]
    return seed_list(args.headline_seeds if row.headline else args.seeds)


def run_one(args: argparse.Namespace, row: Row, seed: int, counts: Path) -> dict:
    run = Path(args.runs_dir) / f"{row.name}-seed{seed}"
    started = time.time()
    train(args, row, seed, run, counts)
    full = args.checkpoint_figures == "all" or seed == seeds_of(row, args)[0]
    discrete = bound(args, run, "discrete", noise_seed(seed), args.eval_step_size) if full else None
    continuous = bound(args, run, "continuous", noise_seed(seed))
    bounds = [continuous, discrete] if full else [continuous]
    record = {
        "row": row.name,
        "seed": seed,
        "settings": {**asdict(row), **{k: v for k, v in vars(args).items() if k != "rows"}},
        "budget": {
            "steps": args.max_steps,
            "sequences_per_step": args.batch_size,
            "max_length": args.max_length,
        },
        "data_seed": args.data_seed,
        "noise_seed": noise_seed(seed),
        "paper_ppl_per_word": PAPER_PPL.get(row.name),
        "continuous": figures(continuous),
        "sentences_file": write_sentences(args, row, seed, *bounds),
        "dev_curve": dev_curve(run),
    }
    if full:
        record["discrete"] = figures(discrete)
        record["samples"] = sample_metrics(args, row, run)
    if row.name == "pretrained-spindle-none" and seed == seed_list(args.headline_seeds)[0]:
        record["table3"] = {
            steps: figures(
                bound(args, run, "discrete", noise_seed(seed), args.num_steps // int(steps))
            )
            for steps in args.table3_steps.split(",")
        }
    record["precision"] = trained_precision(run)
    record["machine"] = describe_machine(args.device)
    record["wall_time_s"] = round(time.time() - started, 1)
    record["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    return record


def main(argv: list[str] | None = None) -> None:
    """The grid (``guarded``)."""
    args = parse_args(argv)
    guarded("ablation", lambda: grid(args))


def grid(args: argparse.Namespace) -> None:
    wanted = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(wanted) - {row.name for row in GRID})
    if unknown:
        raise UsageError(f"--rows: unknown {unknown}; choose from {[r.name for r in GRID]}")
    rows = [row for row in GRID if not wanted or row.name in wanted]
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results = output / "results.jsonl"
    done = finished_runs(results)
    check_precision(results, resolve_precision(args.bf16, pick_device(args.device)))
    counts = Path(args.runs_dir) / "word_freq.pt"
    if not counts.is_file():
        call("word_freq", "--model_name_or_path", args.model_name_or_path, "--dataset",
             args.dataset, "--max_length", args.max_length, "--output", counts)  # fmt: skip
    for row, seed in plan(rows, seed_list(args.seeds), seed_list(args.headline_seeds)):
        if (row.name, seed) in done:
            print(f"ablation: {row.name} seed {seed} done already, skipped")
            continue
        print(f"ablation: {row.name} seed {seed}")
        check_run_folder(Path(args.runs_dir) / f"{row.name}-seed{seed}")
        record = run_one(args, row, seed, counts)
        before = results.read_text() if results.is_file() else ""
        write_text(results, before + json_text(record, None, str(results)) + "\n")
    from experiments.ablation.plots import write_pictures
    from experiments.ablation.table import earlier_grids, summary

    with contextlib.suppress(FileNotFoundError):
        write_json(output / "pictures.json", write_pictures(results, output))
        text = summary(read_jsonl(results), output, earlier_grids(output))
        write_text(output / "summary.md", text)
    print(f"ablation: results in {results}")


def plan(rows: list[Row], seeds: list[int], headline_seeds: list[int]) -> list[tuple[Row, int]]:
    """(row, training seed) of every run, in the order they run: the paper's rows take every
    seed of ``seeds``, the headline rows every seed of ``headline_seeds``, the rows beyond the
    paper the first of ``seeds``. Seed by seed (every row's first seed, then every row's
    second...), the rows beyond the paper last, so that a grid stopped part-way is balanced."""
    runs = []
    for row in rows:
        if row.name not in PAPER_PPL:
            chosen = seeds[:1]
        else:
            chosen = headline_seeds if row.headline else seeds
        runs += [(row, seed) for seed in chosen]
    order = {row.name: i for i, row in enumerate(rows)}

    def key(run: tuple[Row, int]) -> tuple[bool, int, int]:
        row, seed = run
        chosen = headline_seeds if row.headline else seeds
        return (row.name not in PAPER_PPL, chosen.index(seed), order[row.name])

    return sorted(runs, key=key)


if __name__ == "__main__":
    main()
