"""Pictures of the ablation (experiments.ablation): the dev bound against training steps for
every row (mean over seeds, the seeds' range as a band), and the per-word perplexity bound
against ELBO steps for the spindle row (the paper's Table 3 analogue). Each function returns
the numbers it drew.

python3 -m experiments.ablation.plots [RESULTS_JSONL] [--out FOLDER]   (default: the committed
experiments/ablation/results/results.jsonl, pictures beside it, with pictures.json: the
numbers drawn, which the tests compare with what today's code draws)
"""

from __future__ import annotations

import math
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import iter_jsonl, write_error, write_json

DPI = 150
STYLE = {"font.size": 13, "axes.titlesize": 14, "axes.labelsize": 13, "legend.fontsize": 11,
         "xtick.labelsize": 11, "ytick.labelsize": 11}  # fmt: skip
# Okabe and Ito's colour-blind-safe palette: a colour per row, none two alike
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000",
           "#F0E442"]  # fmt: skip
REPO = Path(__file__).resolve().parents[2]
RESULTS = Path("experiments/ablation/results/results.jsonl")  # in the repository


def _save(fig, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=DPI, bbox_inches="tight")
    except OSError as error:
        raise write_error(Path(error.filename or out), error, kept=False, hint="--out") from None
    finally:
        plt.close(fig)


def dev_curves(records: list[dict], out: Path) -> dict[str, dict]:
    """Dev bound (nats per token) against steps, one line per row: the mean over its seeds at
    the steps every seed logged, with a band from the lowest seed to the highest (a row with
    one seed: its line alone). The title says whether the seeds were scored on the same dev
    sentences (one ``--data_seed`` for every run) or each on its own (older grids drew the dev
    set with the training seed). Returns {row: {"seeds", "steps", "mean", "low", "high"}}."""
    drawn: dict[str, dict] = {}
    for row in dict.fromkeys(r["row"] for r in records):
        runs = sorted((r for r in records if r["row"] == row), key=lambda r: r["seed"])
        curves = [dict((int(step), nats) for step, nats in r["dev_curve"]) for r in runs]
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        values = [[c[step] for c in curves] for step in steps]
        drawn[row] = {"seeds": [r["seed"] for r in runs], "steps": steps,
                      "mean": [sum(v) / len(v) for v in values],
                      "low": [min(v) for v in values],
                      "high": [max(v) for v in values]}  # fmt: skip
    data_seeds = {r.get("settings", {}).get("data_seed") for r in records}
    same = len(data_seeds) == 1 and None not in data_seeds
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(12, 6.5))
        for i, (row, line) in enumerate(drawn.items()):
            colour, n = COLOURS[i % len(COLOURS)], len(line["seeds"])
            ax.plot(line["steps"], line["mean"], lw=2, color=colour, marker="o", markersize=6,
                    label=f"{row} ({n} seed{'s' * (n > 1)})")  # fmt: skip
            if n > 1:
                ax.fill_between(line["steps"], line["low"], line["high"], color=colour,
                                alpha=0.18, linewidth=0)  # fmt: skip
        settings = records[0].get("settings", {}) if records else {}
        ax.set_xlabel(f"training step (optimizer steps of {settings.get('batch_size', '?')} "
                      "sequences)")  # fmt: skip
        ax.set_ylabel("dev bound (NELBO), nats per token")
        sentences = "every seed on the same dev sentences"
        if not same:
            sentences = "each seed on its own dev sentences (drawn with the training seed)"
        ax.set_title(f"Ablation: dev bound during training, mean over seeds; band: lowest to "
                     f"highest seed\n({settings.get('dev_size', '?')} dev sequences, one noise "
                     f"draw each, {sentences}; lower is better)", fontsize=12)  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="row")
        _save(fig, out)
    return drawn


def table3(records: list[dict], out: Path) -> dict[int, float]:
    """Per-word PPL bound against the number of ELBO steps T/S (spindle row, the one seed
    that has it), with 95% intervals over the test sentences and their draws (± 1.96 s.e. of
    the nats, as the text's intervals). Returns {steps: ppl}."""
    rows = [r for r in records if "table3" in r]
    if not rows:
        return {}
    record = rows[0]
    figures = {int(k): v for k, v in record["table3"].items()}
    drawn = {steps: v["ppl_per_word"] for steps, v in figures.items()}
    steps = sorted(drawn)
    nats = [figures[s]["nats_per_word"] for s in steps]
    se = [figures[s].get("nats_per_word_se", 0.0) for s in steps]
    ppl = [drawn[s] for s in steps]
    low = [p - math.exp(n - 1.96 * e) for p, n, e in zip(ppl, nats, se, strict=True)]
    high = [math.exp(n + 1.96 * e) - p for p, n, e in zip(ppl, nats, se, strict=True)]
    sentences = record.get("settings", {}).get("eval_examples", "?")
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(9, 6))
        ax.errorbar(steps, ppl, yerr=[low, high], marker="o", capsize=6, lw=2, markersize=8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.set_xlabel("ELBO steps T/S (the bound's number of time steps)")
        ax.set_ylabel("per-word perplexity bound, exp(nats per word)")
        ax.set_title(f"{record['row']}, one seed (seed {record['seed']}): bound against steps\n"
                     f"95% intervals over {sentences} test sentences and their draws (the "
                     "same sentences at every T/S)", fontsize=12)  # fmt: skip
        ax.grid(alpha=0.3)
        _save(fig, out)
    return drawn


def read_results(results: Path) -> list[dict]:
    """The ablation's records; a line without ``row``, ``seed`` or a ``dev_curve`` of
    [step, nats] pairs is one line naming the file and the line."""
    results = Path(results)
    if not results.is_file():
        raise UsageError(f"{results}: no such file; run experiments.ablation first")
    records = []
    for number, record, _ in iter_jsonl(results):
        curve = record.get("dev_curve") if isinstance(record, dict) else None
        good = isinstance(record, dict) and isinstance(record.get("row"), str) and isinstance(
            record.get("seed"), int
        ) and isinstance(curve, list) and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)
            for p in curve
        )  # fmt: skip
        if not good:
            raise UsageError(f"{results}:{number}: a record needs row, seed and dev_curve "
                             "([[step, nats], ...]); fix or delete that line")  # fmt: skip
        records.append(record)
    if not records:
        raise UsageError(f"{results}: no records; run experiments.ablation first")
    return records


def write_pictures(results: Path, output: Path) -> dict:
    """Both pictures from ``results`` into ``output``; returns what was drawn, by file."""
    records = read_results(results)
    drawn = {"dev_curves.png": dev_curves(records, output / "dev_curves.png")}
    steps = table3(records, output / "table3.png")
    if steps:
        drawn["table3.png"] = steps
    return drawn


def build_parser() -> Parser:
    p = Parser(prog="python3 -m experiments.ablation.plots", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="?", type=Path, default=RESULTS,
                   help="experiments.ablation's results.jsonl (default: %(default)s)")  # fmt: skip
    p.flag("--out", type=Path, default=None, help="where the PNGs go (none: beside the results)")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    results = REPO / args.results  # a relative path is the repository's (an absolute one stays)
    output = args.out or results.parent
    drawn = write_pictures(results, output)
    write_json(output / "pictures.json", drawn)
    for name in (*drawn, "pictures.json"):
        print(f"wrote {output / name}")
    return drawn


if __name__ == "__main__":
    main()
