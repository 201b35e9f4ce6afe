"""The seq2seq study's summary (summary.md): per task and metric, DiffusionBERT against each
autoregressive baseline with a paired interval over sources, and the paper's claim labelled.

python3 -m experiments.seq2seq_wiki.summary [--output experiments/seq2seq_wiki/results]

Labels. Quality (BLEU, ROUGE-L, coverage), "comparable": confirmed when the 95% interval of
diffusion − baseline lies above −10% of the baseline's mean (non-inferiority), reversed when
it lies below it, else undecided. Diversity, "more diverse" (div-4 and distinct unigrams
pooled over a source's candidates higher, self-BLEU lower): confirmed when the interval
excludes 0 on the diverse side, reversed on the other, else undecided. The intervals count
the sources (the scores averaged over the seeds per source), not the seeds.
"""

from __future__ import annotations

import random
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.cli import Parser
from common.errors import exit_on_usage_error
from common.files import read_json, write_text
from common.machine import describe_machine
from evaluation.compare_outputs import paired_difference, per_source

RESULTS = Path("experiments/seq2seq_wiki/results")
QUALITY, MARGIN = ("bleu", "rouge_l", "coverage"), 0.10
DIVERSITY = {"div_4": 1, "distinct_1": 1, "self_bleu": -1}  # +1: higher is more diverse


def label(metric: str, figures: dict) -> str:
    """The paper's claim for one metric: confirmed, reversed or undecided (module docstring)."""
    low, high = figures["interval"]
    if metric in QUALITY:
        margin = -MARGIN * abs(figures["b"])
        return "confirmed" if low > margin else "reversed" if high < margin else "undecided"
    sign = DIVERSITY[metric]
    low, high = sorted((sign * low, sign * high))
    return "confirmed" if low > 0 else "reversed" if high < 0 else "undecided"


def pooled(files: list[str]) -> dict[str, list]:
    """Per-source scores averaged over seeds (the same sources in every file)."""
    tables = [per_source(f) for f in files]
    out = {"source": tables[0]["source"]}
    for metric in tables[0]:
        if metric != "source" and all(metric in t for t in tables):
            out[metric] = [sum(v) / len(v) for v in zip(*(t[metric] for t in tables), strict=True)]
    return out


def verdicts(seeds: dict, system: str, baseline: str) -> list[str]:
    """Table rows of one system against one baseline, pooled over seeds."""
    a = pooled([entry["metrics"][system] for entry in seeds.values()])
    b = pooled([entry["metrics"][baseline] for entry in seeds.values()])
    rows = []
    for metric in (*QUALITY, *DIVERSITY):
        if metric in a and metric in b:
            f = paired_difference(a[metric], b[metric])
            low, high = f["interval"]
            rows.append(f"| {system} vs {baseline} | {metric} | {f['a']:.3f} | {f['b']:.3f} | "
                        f"{f['difference']:+.3f} [{low:+.3f}, {high:+.3f}] | "
                        f"{label(metric, f)} |")  # fmt: skip
    return rows


def write_summary(output: str | Path) -> str:
    output = Path(output)
    results = read_json(output / "results.json", "results")
    lines = ["# DiffusionBERT against an autoregressive baseline on real English", "",
             f"Machine: {describe_machine('cpu')}. {__doc__.split(chr(10) * 2)[2]}"]  # fmt: skip
    for task, seeds in results.items():
        lines += ["", f"## {task} ({len(seeds)} seed(s))", "",
                  "| comparison | metric | diffusion | baseline | difference, 95% | claim |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for system in ("diffusion-mbr", "diffusion-mbr-guided"):
            for baseline in ("ar-beam", "ar-sample-mbr"):
                lines += verdicts(seeds, system, baseline)
        first = next(iter(seeds.values()))["metrics"]
        lines += ["", "| system | seconds per source | MBR − first candidate, BLEU |",
                  "|---|---|---|"]  # fmt: skip
        for system, path in first.items():
            record = read_json(path, "metrics")
            columns = record.get("per_source", {})
            mbr = "n/a"
            if "bleu_single" in columns:
                f = paired_difference(columns["bleu"], columns["bleu_single"])
                mbr = f"{f['difference']:+.3f} [{f['interval'][0]:+.3f}, {f['interval'][1]:+.3f}]"
            per_source_s = record["wall_time_s"] / record["num_sources"]
            lines.append(f"| {system} | {per_source_s:.2f} | {mbr} |")
        for system, path in first.items():
            outputs = Path(path).with_name(f"{task}_mbr.txt").read_text().splitlines()
            sources = per_source(path)["source"]
            chosen = sorted(random.Random(0).sample(range(len(outputs)), min(10, len(outputs))))
            lines += ["", f"Ten outputs of {system} (seed 1, chosen by a fixed seed):", ""]
            lines += [f"- `{sources[i]}` → {outputs[i]}" for i in chosen]
    text = "\n".join(lines) + "\n"
    write_text(output / "summary.md", text)
    return text


def build_parser() -> Parser:
    p = Parser(prog="python3 -m experiments.seq2seq_wiki.summary", description=__doc__)
    p.flag("--output", default=str(RESULTS), help="the study's results folder")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    print(write_summary(build_parser().parse_args(argv).output))


if __name__ == "__main__":
    main()
