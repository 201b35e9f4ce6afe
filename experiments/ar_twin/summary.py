"""The study's summary (summary.md) and pictures from its results folder.

python3 -m experiments.ar_twin.summary [--output experiments/ar_twin/results]
"""

from __future__ import annotations

import random
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from common.cli import Parser
from common.errors import exit_on_usage_error
from common.files import read_json, write_text
from common.machine import describe_machine
from evaluation.recipes import compare_recipes
from experiments.ar_twin.settings import RESULTS

METRICS = ("bleu", "self_bleu", "dist_1", "div_4", "unigram_entropy_nats", "gen_ppl")


def interval(figures: dict) -> str:
    low, high = figures["interval"]
    return f"{figures['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"


def pair_rows(pairs: dict) -> list[str]:
    """One table row per pair: both models' nats/word and the paired difference."""
    rows = []
    for tag, pair in pairs.items():
        c = pair["comparison"]
        w = c["per_word"]
        rows.append(f"| {tag} | {w['a']:.3f} | {w['b']:.3f} | {interval(w)} | "
                    f"{interval(c['per_token'])} | {c['num_sentences']} |")  # fmt: skip
    return rows


def metric_rows(named: dict) -> list[str]:
    """One row per (name, model): the samples' metrics."""
    rows = []
    for name, by_model in named.items():
        for model, metrics in by_model.items():
            cells = " | ".join(
                f"{metrics[k]:.3f}" if isinstance(metrics.get(k), float) else "n/a" for k in METRICS
            )
            rows.append(f"| {name} | {model} | {cells} |")
    return rows


def frontier_rows(points: list[dict]) -> list[str]:
    """The quality-diversity sweep as a table: one row per model and sampling setting,
    generative perplexity and unigram entropy beside the other metrics."""
    if not points:
        return []
    lines = ["", "Frontier (samples over a sweep of temperature, top-p and diffusion steps; "
             "generative perplexity under another seed's twin):", "",
             "| model | temperature | top-p | steps | gen_ppl | unigram_entropy_nats | bleu | "
             "self_bleu | dist_1 |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for q in points:
        figures = " | ".join(f"{q[k]:.3f}" if isinstance(q.get(k), float) else "n/a"
                             for k in ("gen_ppl", "unigram_entropy_nats", "bleu", "self_bleu",
                                       "dist_1"))  # fmt: skip
        lines.append(f"| {q['model']} | {q['temperature']} | {q['topp']} | "
                     f"{q['sample_steps'] or '—'} | {figures} |")  # fmt: skip
    return lines


def examples(output: Path, name: str, count: int = 10) -> list[str]:
    """``count`` samples of a samples file, chosen by a fixed seed."""
    path = output / "samples" / f"{name}.txt"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return random.Random(0).sample(lines, min(count, len(lines)))


def over_seeds(pairs: dict, output: Path) -> dict | None:
    """The recipe-level difference over the budget's seeds (evaluation.recipes), or None
    with fewer than 2 pairs. The records are read from ``output/records`` by name (where the
    study writes them), so a results folder that was moved or committed still reads."""
    if len(pairs) < 2:
        return None
    side = [[str(output / "records" / Path(p["records"][k]).name) for p in pairs.values()]
            for k in (0, 1)]  # fmt: skip
    return compare_recipes(*side)


def pictures(results: dict, output: Path) -> list[str]:
    """dev_curves.png (the long pair) and frontier.png; returns the names written."""
    written = []
    long = results.get("long")
    if long:
        fig, ax = plt.subplots(figsize=(6, 4))
        for kind, curve in long["dev_curves"].items():
            if curve:
                ax.plot(*zip(*curve, strict=True), label=kind)
        ax.set(xlabel="step", ylabel="dev nats/token (diffusion: bound given the length; "
               "AR: exact, end token included)",
               title=f"long pair, seed {long['seed']}")  # fmt: skip
        ax.legend()
        fig.savefig(output / "dev_curves.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append("dev_curves.png")
    points = [p for p in results.get("frontier") or [] if p.get("gen_ppl")]
    if points:
        fig, ax = plt.subplots(figsize=(6, 4))
        for kind in sorted({p["model"] for p in points}):
            mine = [p for p in points if p["model"] == kind]
            ax.scatter([p["unigram_entropy_nats"] for p in mine], [p["gen_ppl"] for p in mine],
                       label=kind)  # fmt: skip
        ax.set(xlabel="unigram entropy of the samples (nats)", yscale="log",
               ylabel="generative perplexity (another seed's AR twin)")  # fmt: skip
        ax.legend()
        fig.savefig(output / "frontier.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append("frontier.png")
    return written


def write_summary(output: str | Path) -> str:
    """summary.md of the results folder ``output``; returns its text."""
    output = Path(output)
    results = read_json(output / "results.json", "results")
    lines = [
        "# DiffusionBERT against its autoregressive twin",
        "",
        f"Written from `{output}/results.json` by `python3 -m experiments.ar_twin.summary`; "
        f"machine: {describe_machine('cpu')}.",
        "",
        "Difference = diffusion's full-sequence bound (continuous, + −log p(length)) − the "
        "twin's exact NLL, per sentence, paired; the bound is above its model's NLL, so the "
        "difference bounds the gap from above. Intervals: 95%, over the test sentences (a "
        "pair) or over sentences and training seeds (the recipes).",
        "",
        "| pair | diffusion nats/word | AR nats/word | difference nats/word | per token | "
        "sentences |",
        "|---|---|---|---|---|---|",
    ]
    budget, long = results.get("budget") or {}, results.get("long") or {}
    lines += pair_rows(budget)
    lines += pair_rows({f"long {p}": v for p, v in (long.get("points") or {}).items()})
    recipe = over_seeds(budget, output)
    if recipe:
        w = recipe["per_word"]
        low, high = w["interval"]
        lines += ["", f"Over {len(budget)} seeds (sentences and seeds, evaluation.recipes): "
                  f"{w['difference']:+.3f} nats/word, 95% [{low:+.3f}, {high:+.3f}]: "
                  f"{recipe['verdict']} (A = diffusion, B = AR)."]  # fmt: skip
    named = {tag: pair["samples"] for tag, pair in budget.items() if "samples" in pair}
    named.update({f"long {p}": v["samples"] for p, v in (long.get("points") or {}).items()
                  if "samples" in v})  # fmt: skip
    if named:
        lines += ["", "Samples (top-k 30; generative perplexity under another seed's twin):", "",
                  f"| pair | model | {' | '.join(METRICS)} |",
                  "|---|---|" + "---|" * len(METRICS), *metric_rows(named)]  # fmt: skip
    for name in (f"{kind}-{tag}" for tag in list(budget)[:1] for kind in ("diffusion", "ar")):
        shown = examples(output, name)
        if shown:
            lines += ["", f"Ten samples of `{name}` (chosen by a fixed seed):", ""]
            lines += [f"- {text}" for text in shown]
    lines += frontier_rows(results.get("frontier") or [])
    pics = pictures(results, output)
    if pics:
        lines += ["", *[f"![{name}]({name})" for name in pics]]
    text = "\n".join(lines) + "\n"
    write_text(output / "summary.md", text)
    return text


def build_parser() -> Parser:
    p = Parser(prog="python3 -m experiments.ar_twin.summary", description=__doc__.splitlines()[0])
    p.flag("--output", default=str(RESULTS), help="the study's results folder")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    print(write_summary(build_parser().parse_args(argv).output))


if __name__ == "__main__":
    main()
