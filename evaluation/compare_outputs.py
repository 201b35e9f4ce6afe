"""Is system A's seq2seq output better than system B's? Paired differences of per-source
scores, source by source: the per-item analogue of ``evaluation.compare``.

python3 -m evaluation.compare_outputs A_metrics.json B_metrics.json [--json OUT]

Each file is a ``<task>_metrics.json`` of predict_downstream_condition.py, whose
``per_source`` columns hold one score per source. Sources are matched by their text (the same
split, in any order; a source given twice is matched by its occurrence). For every metric both
files have (BLEU, ROUGE-L, coverage; self-BLEU, distinct unigrams and div-4 pooled over a
source's candidates),
the mean difference A − B, its paired standard error sd(d)/√n, the 95% interval and the
two-sided p of a paired t-test. ``A.json --within`` compares a file's MBR choice with its
first candidate (``bleu`` against ``bleu_single``).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.checks import check_output_file, check_outputs_apart, require_finite
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import read_json, write_json
from evaluation.stats import t_quantile, t_two_sided_p

METRICS = ("bleu", "rouge_l", "coverage", "self_bleu", "distinct_1", "div_4")


def per_source(path: str | Path) -> dict[str, list]:
    """The ``per_source`` columns of a metrics file, checked: one line naming the file and the
    field when they are missing, of unequal lengths, or hold a score that is not a number in
    [0, 1] (every metric here is a fraction)."""
    record = read_json(path, "metrics file")
    columns = record.get("per_source") if isinstance(record, dict) else None
    if not isinstance(columns, dict) or not isinstance(columns.get("source"), list):
        raise UsageError(
            f"{path}: no per_source columns (written by an older "
            "predict_downstream_condition.py?); decode again to get them"
        )
    lengths = {k: len(v) for k, v in columns.items() if isinstance(v, list)}
    if len(set(lengths.values())) != 1:
        raise UsageError(f"{path}: the per_source columns differ in length {lengths}")
    for metric in (*METRICS, "bleu_single"):
        if metric in columns and not isinstance(columns[metric], list):
            raise UsageError(f"{path}: per_source {metric} is not a list of scores")
        for i, value in enumerate(columns.get(metric) or []):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or not 0 <= value <= 1:
                raise UsageError(f"{path}: per_source {metric}[{i}] is {value!r}, not a score "
                                 "in [0, 1]; decode that source again")  # fmt: skip
    return columns


def keys(sources: list[str]) -> list[tuple[str, int]]:
    """(source, occurrence) of every source: a repeated source is matched by its occurrence."""
    seen: Counter = Counter()
    out = []
    for source in sources:
        out.append((source, seen[source]))
        seen[source] += 1
    return out


def paired_difference(a: list[float], b: list[float], level: float = 0.95) -> dict:
    """Mean of a − b with its paired s.e., interval and p (n ≥ 2 aligned values)."""
    n = len(a)
    if n < 2:
        raise UsageError(f"{n} source(s): a paired comparison needs at least 2")
    diff = [x - y for x, y in zip(a, b, strict=True)]
    mean = math.fsum(diff) / n
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diff) / (n - 1))
    se = sd / math.sqrt(n)
    half = t_quantile(level, n - 1) * se
    t = mean / se if se > 0 else (math.inf if mean else 0.0)
    return {
        "a": math.fsum(a) / n,
        "b": math.fsum(b) / n,
        "difference": mean,
        "paired_se": se,
        "interval": [mean - half, mean + half],
        "p_value": t_two_sided_p(t, n - 1) if math.isfinite(t) else 0.0,
        "num_sources": n,
    }


def compare_columns(a: dict[str, list], b: dict[str, list], names=("A", "B")) -> dict:
    """Every shared metric of two per-source tables, paired by source."""
    index = {key: i for i, key in enumerate(keys(b["source"]))}
    order = [index.get(key) for key in keys(a["source"])]
    if None in order or len(order) != len(index):
        raise UsageError(
            f"{names[0]} and {names[1]} decoded different sources ({len(a['source'])} and "
            f"{len(b['source'])}): decode the same split with the same --max_examples"
        )
    if len(order) < 2:
        raise UsageError(f"{len(order)} source(s): a paired comparison needs at least 2")
    out = {}
    for metric in METRICS:
        if metric in a and metric in b:
            out[metric] = paired_difference(a[metric], [b[metric][i] for i in order])
    return out


def table(name_a: str, name_b: str, figures: dict) -> str:
    lines = [f"A = {name_a}", f"B = {name_b}"]
    for metric, f in figures.items():
        low, high = f["interval"]
        verdict = "A higher" if low > 0 else "B higher" if high < 0 else "undecided"
        lines.append(
            f"  {metric:9} A {f['a']:.4f}  B {f['b']:.4f}  A−B {f['difference']:+.4f} ± "
            f"{f['paired_se']:.4f}  95% [{low:+.4f}, {high:+.4f}]  p {f['p_value']:.3g}  "
            f"({f['num_sources']} sources): {verdict}"
        )
    return "\n".join(lines)


def build_parser() -> Parser:
    p = Parser(prog="python3 -m evaluation.compare_outputs", description=__doc__)
    p.add_argument("metrics", nargs="+", help="one or two <task>_metrics.json files")
    p.boolean("--within", help="one file: its MBR choice against its first candidate")
    p.flag("--json", default=None, help="also write the figures to this file")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if len(args.metrics) != (1 if args.within else 2):
        raise UsageError("give two metrics files, or one with --within")
    if args.json:
        check_output_file(args.json, "--json")
        check_outputs_apart({"--json": args.json}, {f"file {m}": m for m in args.metrics})
    if args.within:
        columns = per_source(args.metrics[0])
        if "bleu_single" not in columns:
            raise UsageError(f"{args.metrics[0]}: no bleu_single column (--mbr_size 1?)")
        names = ("MBR choice", "first candidate")
        figures = {"bleu": paired_difference(columns["bleu"], columns["bleu_single"])}
    else:
        names = tuple(args.metrics)
        figures = compare_columns(per_source(names[0]), per_source(names[1]), names)
    require_finite(figures, "the comparison")
    print(table(*names, figures))
    result = {"a": names[0], "b": names[1], "metrics": figures}
    if args.json:
        write_json(Path(args.json), result)
    return result


if __name__ == "__main__":
    main()
