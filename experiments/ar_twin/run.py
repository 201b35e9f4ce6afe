"""How far is DiffusionBERT from an autoregressive model of the same size, data and budget?

The ablation's best diffusion recipe (pretrained MiniLM, spindle, time-agnostic, d3pm) against
its autoregressive twin (main.py --objective ar: the same backbone, data, steps, batch and
learning rate), on wiki-summaries:
- budget: each seed of --seeds at the grid's 600 steps; the paired per-sentence difference
  (diffusion's full-sequence bound − the twin's exact NLL, nats/word) per seed and over seeds;
- long: one pair at --long_steps (8x), bounded at --long_points from its step copies, with both
  dev curves;
- frontier: samples over a small sweep of temperature / top-p (the twin) and temperature /
  steps (diffusion), each scored by generative perplexity under another seed's twin and by
  the unigram entropy.
Every step leaves a file and is skipped when its file exists: run the same command again to
continue (an interrupted training run resumes from its last/).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.files import read_json, write_json
from common.precision import resolve_precision
from common.runtime import pick_device
from experiments.ablation.calls import call
from experiments.ablation.folders import check_run_precision, same_precision
from experiments.ablation.grid import GRID
from experiments.ablation.run import dev_curve
from experiments.ablation.run import train as train_diffusion_run

ROW = next(row for row in GRID if row.name == "pretrained-spindle-none")
DIFFUSION, AR = "diffusion", "ar"


def ar_flags(budget: argparse.Namespace, seed: int, steps: int, run: Path) -> list:
    """main.py's flags of the twin: the ablation's budget, no diffusion settings."""
    return [
        "--objective", "ar", "--model_name_or_path", budget.model_name_or_path,
        "--dataset", budget.dataset, "--max_steps", steps, "--batch_size", budget.batch_size,
        "--max_length", budget.max_length, "--lr", budget.lr, "--lr_schedule", "constant",
        "--warmup_steps", budget.warmup_steps, "--seed", seed, "--data_seed", budget.data_seed,
        "--dev_size", budget.dev_size, "--eval_steps", budget.eval_steps,
        "--logging_steps", 50, "--output_dir", run, "--fitlog_dir", "",
        "--device", budget.device, "--group_by_length", str(budget.group_by_length).lower(),
        "--bf16", str(budget.bf16).lower(),
    ]  # fmt: skip


def study_precision(args: argparse.Namespace) -> str:
    """The precision every run of the study trains in: the budget's --bf16 on this device."""
    return resolve_precision(args.budget.bf16, pick_device(args.budget.device))


def finished(run: Path, steps: int) -> bool:
    """Whether ``run`` trained to ``steps`` (its last/ says so)."""
    args = run / "last" / "training_args.json"
    return args.is_file() and read_json(args, "training_args").get("step") == steps


def train(args: argparse.Namespace, kind: str, seed: int, steps: int, run: Path, extra=()) -> Path:
    """Train (or resume, or skip) one run in the study's precision; returns its folder."""
    check_run_precision(run, study_precision(args))
    if finished(run, steps):
        return run
    print(f"ar_twin: training {kind} seed {seed}, {steps} steps → {run}")
    if kind == AR:
        flags = ar_flags(args.budget, seed, steps, run) + list(extra)
        if (run / "last" / "training_state.pt").is_file():
            flags += ["--resume_from", run / "last"]
        call("main", *flags)
    else:
        budget = argparse.Namespace(**{**vars(args.budget), "max_steps": steps})
        train_diffusion_run(budget, ROW, seed, run, word_freq(args), tuple(extra))
    return run


def word_freq(args: argparse.Namespace) -> Path:
    """The training split's token counts (the spindle's), written once."""
    counts = Path(args.runs_dir) / "word_freq.pt"
    if not counts.is_file():
        b = args.budget
        call("word_freq", "--model_name_or_path", b.model_name_or_path, "--dataset", b.dataset,
             "--max_length", b.max_length, "--output", counts)  # fmt: skip
    return counts


def likelihood(args: argparse.Namespace, checkpoint: Path, name: str, noise_seed: int) -> Path:
    """compute_elbo.py on the whole test split: the diffusion checkpoint's continuous bound
    (the ablation's estimator and draws) or the twin's exact NLL."""
    out = Path(args.output) / "records" / f"{name}.json"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        b = args.budget
        extra = [] if name.startswith(AR) else [
            "--bound", "continuous", "--mc_samples", b.mc_samples, "--estimator", b.estimator,
            "--seed", noise_seed,
        ]  # fmt: skip
        call("compute_elbo", "--checkpoint", checkpoint, "--dataset", b.dataset, "--split",
             "test", "--device", b.device, "--json", out, *extra)  # fmt: skip
    return out


def compare(args: argparse.Namespace, tag: str, diffusion: Path, ar: Path) -> dict:
    """The paired per-sentence difference diffusion − twin of one pair."""
    out = Path(args.output) / "compare" / f"{tag}.json"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        call("evaluation.compare", diffusion, ar, "--json", out)
    return read_json(out, "comparison")["comparisons"][0]


def samples(
    args: argparse.Namespace, kind: str, checkpoint: Path, name: str, judge: Path | None,
    temperature: float = 1.0, topp: float = 1.0, steps: int | None = None,
) -> dict:  # fmt: skip
    """--num_samples samples of one checkpoint and setting, and their metrics (BLEU against
    the test split, self-BLEU, dist-1, div-4, unigram entropy, generative perplexity under
    ``judge``)."""
    folder = Path(args.output) / "samples"
    text, scores = folder / f"{name}.txt", folder / f"{name}.metrics.json"
    unjudged = judge and scores.is_file() and "gen_ppl" not in read_json(scores, "metrics")
    if unjudged:  # scored before the judge existed (or it failed): score the samples again
        call("compute_metric", "--generated", text, "--dataset", args.budget.dataset,
             "--split", "test", "--json", scores, "--gen_ppl_model", judge)  # fmt: skip
    if not scores.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        flags = ["--checkpoint", checkpoint, "--num_samples", args.num_samples, "--batch_size",
                 args.num_samples, "--topk", args.topk, "--temperature", temperature, "--topp",
                 topp, "--device", args.budget.device, "--output", text]  # fmt: skip
        if kind == DIFFUSION:
            flags += ["--num_steps", steps or args.sample_steps, "--sampler", "cached"]
        call("predict", *flags)
        judged = ["--gen_ppl_model", judge] if judge else []
        call("compute_metric", "--generated", text, "--dataset", args.budget.dataset, "--split",
             "test", "--json", scores, *judged)  # fmt: skip
    return read_json(scores, "metrics")


def judge_of(args: argparse.Namespace, seed: int) -> Path | None:
    """The twin of another seed (the next in --seeds), whose generative perplexity scores the
    samples of seed ``seed``'s models; None before it exists."""
    seeds = args.seed_list
    other = seeds[(seeds.index(seed) + 1) % len(seeds)] if seed in seeds else seeds[0]
    folder = Path(args.runs_dir) / f"ar-seed{other}" / "best"
    return folder if other != seed and folder.is_dir() else None


def diffusion_run(args: argparse.Namespace, seed: int) -> Path | None:
    """The diffusion side of seed ``seed`` at the grid's budget: the grid's run when finished,
    else the study's own (trained here with --train_diffusion)."""
    steps = args.budget.max_steps
    grid_run = Path(args.diffusion_runs) / f"{ROW.name}-seed{seed}"
    if finished(grid_run, steps):
        check_run_precision(grid_run, study_precision(args))
        return grid_run
    own = Path(args.runs_dir) / f"diffusion-seed{seed}"
    if finished(own, steps) or args.train_diffusion:
        return train(args, DIFFUSION, seed, steps, own)
    print(f"ar_twin: diffusion seed {seed} not finished in {grid_run} yet (the grid trains it; "
          "or pass --train_diffusion); its pair waits")  # fmt: skip
    return None


def budget_phase(args: argparse.Namespace) -> dict:
    """Every seed's pair at the grid's budget: records, comparison, samples."""
    steps, pairs = args.budget.max_steps, {}
    for seed in args.seed_list:
        train(args, AR, seed, steps, Path(args.runs_dir) / f"ar-seed{seed}")
    for seed in args.seed_list:
        diffusion = diffusion_run(args, seed)
        if diffusion is None:
            continue
        ar = Path(args.runs_dir) / f"ar-seed{seed}"
        tag = f"seed{seed}-{steps}"
        same_precision({DIFFUSION: diffusion, AR: ar})
        a = likelihood(args, diffusion / "best", f"{DIFFUSION}-{tag}", seed)
        b = likelihood(args, ar / "best", f"{AR}-{tag}", seed)
        pairs[tag] = {
            "seed": seed, "steps": steps, "diffusion_run": str(diffusion), "ar_run": str(ar),
            "records": [str(a), str(b)], "comparison": compare(args, tag, a, b),
            "samples": {kind: samples(args, kind, run / "best", f"{kind}-{tag}",
                                      judge_of(args, seed))
                        for kind, run in ((DIFFUSION, diffusion), (AR, ar))},
        }  # fmt: skip
    return pairs


def long_phase(args: argparse.Namespace) -> dict:
    """The long pair: trained with step copies, bounded at each of --long_points."""
    seed, steps = args.long_seed, args.long_steps
    extra = ("--save_steps", args.save_steps, "--keep_last", steps // args.save_steps)
    runs = {kind: train(args, kind, seed, steps, Path(args.runs_dir) / f"{kind}-long-seed{seed}",
                        extra) for kind in (DIFFUSION, AR)}  # fmt: skip
    same_precision(runs)
    points = {}
    for point in args.points:
        tag = f"long-seed{seed}-{point}"
        folders = {kind: run / f"checkpoint-{point}" for kind, run in runs.items()}
        a = likelihood(args, folders[DIFFUSION], f"{DIFFUSION}-{tag}", seed)
        b = likelihood(args, folders[AR], f"{AR}-{tag}", seed)
        points[point] = {"records": [str(a), str(b)], "comparison": compare(args, tag, a, b)}
        if point == steps:
            points[point]["samples"] = {
                kind: samples(args, kind, folders[kind], f"{kind}-{tag}", judge_of(args, seed))
                for kind in (DIFFUSION, AR)
            }
    curves = {kind: dev_curve(run) for kind, run in runs.items()}
    return {"seed": seed, "steps": steps, "points": points, "dev_curves": curves}


def frontier_phase(args: argparse.Namespace) -> list[dict]:
    """Generative perplexity against unigram entropy over a small sweep, at the budget's
    first seed (the long pair's last copies too, where they exist)."""
    seed, steps = args.seed_list[0], args.budget.max_steps
    diffusion = diffusion_run(args, seed)
    sources = {AR: Path(args.runs_dir) / f"ar-seed{seed}" / "best"}
    if diffusion is not None:
        sources[DIFFUSION] = diffusion / "best"
        same_precision({AR: sources[AR].parent, DIFFUSION: diffusion})
    sweep = {
        AR: [(t, p, None) for t in (0.7, 0.85, 1.0) for p in (0.9, 1.0)],
        DIFFUSION: [(t, 1.0, s) for t in (0.7, 0.85, 1.0) for s in (32, 128)],
    }
    points = []
    for kind, checkpoint in sources.items():
        for temperature, topp, sample_steps in sweep[kind]:
            name = f"frontier-{kind}-seed{seed}-{steps}-t{temperature}-p{topp}-s{sample_steps}"
            metrics = samples(args, kind, checkpoint, name, judge_of(args, seed), temperature,
                              topp, sample_steps)  # fmt: skip
            points.append({"model": kind, "temperature": temperature, "topp": topp,
                           "sample_steps": sample_steps, **metrics})  # fmt: skip
    return points


def study(args: argparse.Namespace) -> dict:
    """Every phase asked for, in order; the collected results are written to results.json."""
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results_file = output / "results.json"
    results = read_json(results_file, "--output") if results_file.is_file() else {}
    phases = {"budget": budget_phase, "long": long_phase, "frontier": frontier_phase}
    for phase in args.phase_list:
        results[phase] = phases[phase](args)
        write_json(results_file, results)
    return results
