"""The ablation's results (experiments.ablation) as the README shows them: one table row per grid
row (mean over seeds), the paper's pairwise orderings checked against ours at the checkpoint
level (first seeds) and the recipe level (every seed; evaluation.recipes), the headline rows'
seed-to-seed spread, and whether the dev-bound ordering still moves between the last two
evaluations.

python3 -m experiments.ablation.table [results.jsonl]   prints the summary (Markdown)
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import read_jsonl
from evaluation.stats import seeds_needed
from experiments.ablation.notes import beyond_lines, dev_order_lines, table3_lines
from experiments.ablation.pairs import paper_pairs
from experiments.ablation.rows import Rows, by_row, having, mean_nats_per_word, row_se, seed_range

FIELDS = ("row", "seed", "paper_ppl_per_word", "continuous", "dev_curve")
# Not in every run: with --checkpoint_figures first only a row's first seed has them.
CHECKPOINT_FIELDS = ("discrete", "samples")

DEFAULT = "experiments/ablation/results/results.jsonl"


def check_records(records: list[dict], path: Path) -> None:
    """Each record has the fields ``summary`` reads; else one line naming the file's line."""
    for number, record in enumerate(records, 1):
        missing = [field for field in FIELDS if field not in record]
        if missing:
            raise UsageError(
                f"{path}: run {number} lacks {', '.join(missing)}; it was not written by "
                "experiments.ablation: remove it and rerun `bash run.sh ablation`"
            )


def table(rows: Rows, folder: Path | None = None) -> list[str]:
    head = (
        "| row | seeds | PPL/word, discrete (nats/word ± s.e.) | PPL/word, continuous | "
        "nats/token, discrete ± s.e. | BLEU | self-BLEU | dist-1 | div-4 | paper PPL |"
    )
    lines = [head, "|" + "---|" * 10]
    for name, runs in rows.items():
        d = mean_nats_per_word(runs)
        se = row_se(runs, folder)
        c = mean_nats_per_word(runs, "continuous")
        discrete = having(runs, "discrete")
        tok = statistics.fmean(r["discrete"]["nats_per_token"] for r in discrete) if discrete \
            else math.nan  # fmt: skip
        tok_se = row_se(runs, folder, "token")
        sampled = having(runs, "samples")
        keys = ("bleu", "self_bleu", "dist_1", "div_4")
        s = {k: statistics.fmean(r["samples"][k] for r in sampled) if sampled else math.nan
             for k in keys}  # fmt: skip
        paper = runs[0]["paper_ppl_per_word"]
        lines.append(
            f"| {name} | {seeds_cell(runs)} | {math.exp(d):,.0f} ({d:.3f} ± {se:.3f}) | "
            f"{math.exp(c):,.0f} | {tok:.3f} ± {tok_se:.3f} | {s['bleu']:.3f} | "
            f"{s['self_bleu']:.3f} | {s['dist_1']:.3f} | {s['div_4']:.3f} | "
            f"{'—' if paper is None else f'{paper:.2f}'} |"
        )
    return lines


def seeds_cell(runs: list[dict]) -> str:
    """The seeds a row's figures average: every run has the continuous bound; with
    --checkpoint_figures first only the first seed has the discrete bound and the samples,
    and the cell names it ("3 (discrete, samples: seed 1)")."""
    partial = [field for field in CHECKPOINT_FIELDS if len(having(runs, field)) < len(runs)]
    if not partial:
        return str(len(runs))
    seeds = sorted({run["seed"] for field in partial for run in having(runs, field)})
    return f"{len(runs)} ({', '.join(partial)}: seed {', '.join(map(str, seeds))})"


def earlier_grids(folder: Path) -> dict[str, list[dict]]:
    """{subfolder name: its records} for every ``<folder>/<name>/results.jsonl``: the grids
    kept beside this one (another budget, another machine); a damaged one is skipped."""
    grids = {}
    for path in sorted(folder.glob("*/results.jsonl")):
        try:
            records = read_jsonl(path)
            check_records(records, path)
        except UsageError:
            continue
        if records:
            grids[path.parent.name] = records
    return grids


def budget_table(records: list[dict], earlier: dict[str, list[dict]]) -> list[str]:
    """Each row's discrete bound (nats/word, mean over its seeds; the seeds in brackets) in
    the earlier grids (fewest steps first) and in this one, side by side, and this grid's
    change from the first grid that has the row."""

    def steps(runs: list[dict]) -> str:
        budget = runs[0].get("budget", {}).get("steps")
        precision = runs[0].get("precision")
        return f"{budget} steps" + (f", {precision}" if precision else "")

    ordered = sorted(earlier.items(), key=lambda item: (item[1][0].get("budget", {}).get(
        "steps", 0), item[0]))  # fmt: skip
    columns = [(label, by_row(runs), steps(runs)) for label, runs in ordered]
    columns.append(("this grid", by_row(records), steps(records)))
    head = "| row | " + " | ".join(f"{label} ({what})" for label, _, what in columns)
    lines = [head + " | change from the first |", "|" + "---|" * (len(columns) + 2)]
    for name in columns[-1][1]:
        cells = []
        for _, rows, _ in columns:
            runs = rows.get(name)
            counted = len(having(runs, "discrete")) if runs else 0
            cells.append(f"{mean_nats_per_word(runs):.3f} ({counted})" if counted else "—")
        first = next((rows[name] for _, rows, _ in columns if name in rows), None)
        change = mean_nats_per_word(columns[-1][1][name]) - mean_nats_per_word(first)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {change:+.3f} |")
    return lines


def summary(records: list[dict], folder: Path | None = None, earlier: dict | None = None) -> str:
    """The whole summary as Markdown; ``folder`` holds the runs' per-sentence files,
    ``earlier`` the grids kept beside this one ({label: records}, ``earlier_grids``)."""
    rows = by_row(records)
    lines = [
        "Mean over the seeds that have each figure (the seeds column names those of the "
        "discrete bound and the samples where they are fewer); s.e. over test sentences (the "
        "ratio estimator's, the mean of the seeds'): it counts the sentences and draws of one "
        "checkpoint, not the seeds.",
        "",
    ]
    lines += table(rows, folder)
    if earlier:
        lines += [
            "",
            "Budgets side by side (discrete bound, nats/word, mean over the seeds that have "
            "it, their number in brackets; the same first test sentences):",
            "",
            *budget_table(records, earlier),
        ]
    pairs = paper_pairs(rows, folder)
    lines += pair_lines(pairs) + level_counts(pairs) + headline_lines(rows)
    lines += seeds_lines(pairs, rows)
    lines += beyond_lines(rows, folder) + table3_lines(records) + dev_order_lines(rows)
    return "\n".join(lines) + "\n"


def pair_lines(pairs: list[dict]) -> list[str]:
    """The paper's ordered pairs, each at the checkpoint and the recipe level."""
    lines = [
        "",
        f"The {len(pairs)} pairs the paper orders (nats/word; paper: its log-PPL difference; "
        "ours: the difference of the rows' discrete bounds, each the mean over the seeds that "
        "have it, the first alone under --checkpoint_figures first). Two levels:",
        "- checkpoint level: the first seeds of both rows, paired sentence by sentence (same "
        "sentences, same noise); its interval counts the sentences and the draws, not the "
        "training seeds: it says which of two checkpoints is lower;",
        "- recipe level: every seed both rows have, paired by seed; its interval counts the "
        "training seeds, the shared sentences and the draws (evaluation.recipes); only where "
        "both rows have at least two seeds.",
        "",
    ]
    for p in pairs:
        a, b = p["pair"]
        line = f"- {a} vs {b}: paper {p['paper']:+.3f}, ours {p['ours']:+.3f}"
        if "paired" in p:
            q = p["paired"]
            low, high = q["interval"]
            line += (
                f"; checkpoint level ({q['bound']}, {q['sentences']} sentences): "
                f"{q['difference']:+.3f} [{low:+.3f}, {high:+.3f}] **{q['label']}**"
            )
        if "recipe" in p:
            q = p["recipe"]
            low, high = q["interval"]
            share = q["variance"]["seeds"] / max(sum(q["variance"].values()), 1e-300)
            line += (
                f"; recipe level ({len(q['seeds'])} seeds, {q['bound']}, {q['sentences']} "
                f"sentences): {q['difference']:+.3f} [{low:+.3f}, {high:+.3f}] "
                f"**{q['label']}** (seeds {100 * share:.0f}% of the variance"
                + ("; one noise seed shared by the seeds' pairs" if q["shared_noise"] else "")
                + ")"
            )
        else:
            line += "; recipe level: none (a row with one seed is one checkpoint)"
        lines.append(line)
    return lines


def level_counts(pairs: list[dict]) -> list[str]:
    """How many pairs each level confirms, reverses or leaves undecided."""
    lines = []
    for level, key in (("Checkpoint level (first seeds)", "paired"), ("Recipe level", "recipe")):
        labelled = [p[key]["label"] for p in pairs if key in p]
        counts = {name: labelled.count(name) for name in ("confirmed", "reversed", "undecided")}
        lines += [
            "",
            f"{level}: "
            + ", ".join(f"{n} {name}" for name, n in counts.items())
            + f" of {len(labelled)} pairs"
            + (f"; {len(pairs) - len(labelled)} pairs have no such interval." if
               len(labelled) < len(pairs) else "."),
        ]  # fmt: skip
    return lines


def headline_lines(rows: Rows) -> list[str]:
    """The seed ranges of the two rows with several seeds (the older grids' headline)."""
    seeded = {name: runs for name, runs in rows.items() if len(runs) > 1}
    if len(seeded) != 2:
        return []
    (a, ra), (b, rb) = seeded.items()
    (lo_a, hi_a), (lo_b, hi_b) = seed_range(ra), seed_range(rb)
    overlap = lo_a <= hi_b and lo_b <= hi_a
    return [
        "",
        f"Headline rows over {len(ra)} and {len(rb)} seeds (discrete, nats/word): "
        f"{a} {lo_a:.3f}–{hi_a:.3f}, {b} {lo_b:.3f}–{hi_b:.3f}; difference of means "
        f"{mean_nats_per_word(ra) - mean_nats_per_word(rb):+.3f}; the seed ranges "
        f"{'overlap' if overlap else 'do not overlap'}.",
    ]


def seeds_lines(pairs: list[dict], rows: Rows, target: float = 0.04) -> list[str]:
    """For the headline pair at the recipe level: how many seeds its interval needs for a
    half-width of ``target`` nats/word, at the components its seeds so far measured."""
    lines = []
    for p in pairs:
        a, b = p["pair"]
        headline = all((rows[r][0].get("settings") or {}).get("headline") for r in (a, b))
        if "recipe" not in p or not headline:
            continue
        q = p["recipe"]
        n = seeds_needed(q, q["sentences"], target)
        half = (q["interval"][1] - q["interval"][0]) / 2
        lines += ["", f"Headline pair ({a} vs {b}): recipe-level half-width {half:.3f} "
                  f"nats/word with {len(q['seeds'])} seeds; at these components (pair s.d. "
                  f"{statistics.stdev(q['per_pair']):.3f}, sentences' s.e. "
                  f"{q['variance']['sentences'] ** 0.5:.4f}) ±{target} needs "
                  + (f"{n} seeds." if n else "more than 64 seeds.")]  # fmt: skip
    return lines


def build_parser() -> Parser:
    p = Parser(prog="python3 -m experiments.ablation.table", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="?", default=DEFAULT,
                   help="experiments.ablation's results.jsonl (default: %(default)s)")  # fmt: skip
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    path = Path(build_parser().parse_args(argv).results)
    if path == Path(DEFAULT):  # the committed grid, wherever the command runs from
        path = Path(__file__).resolve().parents[2] / DEFAULT
    try:
        records = read_jsonl(path)
        check_records(records, path)
    except UsageError as error:
        raise UsageError(f"{error} (the results of `bash run.sh ablation`)") from None
    if not records:
        raise UsageError(f"{path}: no runs yet; run `bash run.sh ablation` first")
    print(summary(records, path.parent, earlier_grids(path.parent)), end="")


if __name__ == "__main__":
    main()
