"""Is model A better than model B? Paired differences of two likelihood bounds, sentence by
sentence.

python3 -m evaluation.compare A.json B.json [C.json ...] [--json OUT]

Each file is a compute_elbo.py --json record. Sentences are matched by id; for each pair of
files the mean difference A − B (per word and per token; negative: A has the lower bound), its
paired standard error (a ratio's: the delta method over sentences, ``ratio_se``), the 95%
interval and the two-sided p-value of a paired t-test are printed, with the unpaired standard
error (what ignoring the pairing gives) for contrast. Records whose sentence sets, dataset,
split, bound, protocol, T or S differ are refused. A bound and an exact NLL (an
autoregressive checkpoint's record) are paired on the whole sequence, length included.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import torch

from common.checks import check_output_file, check_outputs_apart, require_finite
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import write_json
from evaluation.records import (
    BOUND_HELP,
    GRID_BOUNDS,
    full_sequence_nats,
    is_exact,
    read_record,
)
from evaluation.stats import ratio_se, t_quantile, t_two_sided_p

# Settings that must agree for two records to be compared: (name, how to read it).
MUST_AGREE = (
    ("dataset", lambda r: r.get("dataset")),
    ("split", lambda r: r.get("split")),
    ("bound", lambda r: r.get("bound")),
    ("protocol", lambda r: r.get("protocol")),
    ("num_steps", lambda r: r.get("num_steps")),
    ("eval_step_size", lambda r: r.get("eval_step_size")),
)
MIXED_NOTE = (
    "one side is a bound and the other an exact NLL (the autoregressive twin's), paired on the "
    "whole sequence (the bound's full-sequence figure: + −log p(length)): the bound's side is "
    "an upper bound on its model's NLL, so bound − exact bounds that model's NLL gap from above"
)
# Settings that define the noise: a difference keeps the comparison valid but unpaired noise.
NOISE = ("seed", "estimator", "draws", "proposal")


def mixed(a: dict, b: dict) -> bool:
    """Whether one record is a bound and the other an exact NLL (the autoregressive twin's):
    they pair on the whole sequence, length included (``full_sequence_nats``)."""
    return is_exact(a) != is_exact(b)


def check_comparable(a: dict, b: dict, name_a: str, name_b: str) -> None:
    """One line naming the field and both values where the two records cannot be paired."""
    if mixed(a, b):
        bound_side, name = (b, name_b) if is_exact(a) else (a, name_a)
        if bound_side.get("valid_bound") is False:
            raise UsageError(
                f"{name} is not a bound (protocol {bound_side.get('protocol')!r}): against an "
                "exact NLL it bounds nothing; bound it with --protocol exact"
            )
    for field, read in MUST_AGREE[:2] if mixed(a, b) else MUST_AGREE:
        if read(a) != read(b):
            raise UsageError(
                f"field {field} differs: {read(a)!r} in {name_a}, {read(b)!r} in {name_b}; "
                "only bounds of the same kind on the same data can be compared"
            )
    ids_a, ids_b = a["sentences"]["id"], b["sentences"]["id"]
    only_a, only_b = set(ids_a) - set(ids_b), set(ids_b) - set(ids_a)
    if only_a or only_b:
        raise UsageError(
            f"field sentences.id differs: {len(ids_a)} sentences in {name_a}, {len(ids_b)} in "
            f"{name_b}, {len(only_a)} only in the first, {len(only_b)} only in the second "
            f"(e.g. {sorted(only_a or only_b)[0]}); bound the same split with the same "
            "--max_examples"
        )
    for unit in ("tokens", "words"):
        first = dict(zip(ids_a, a["sentences"][unit], strict=True))
        for sid, value in zip(ids_b, b["sentences"][unit], strict=True):
            if first[sid] != value:
                raise UsageError(
                    f"field sentences.{unit} differs for sentence {sid}: {first[sid]} in "
                    f"{name_a}, {value} in {name_b}; the records count units differently "
                    "(another tokenizer or max_length)"
                )


def noise_notes(a: dict, b: dict) -> list[str]:
    """Settings of the noise that differ (the pairing stays valid, less noise cancels)."""
    noise_a, noise_b = a.get("noise") or {}, b.get("noise") or {}
    return [
        f"{field}: {noise_a.get(field)!r} vs {noise_b.get(field)!r}"
        for field in NOISE
        if noise_a.get(field) != noise_b.get(field)
    ]


def sentence_nats(record: dict, full: bool, where: str = "record") -> list[float]:
    """Per-sentence nats to pair: the whole sequence's with ``full``, else the record's own."""
    return full_sequence_nats(record, where) if full else list(record["sentences"]["nats"])


def paired(a: dict, b: dict, level: float = 0.95, names: tuple[str, str] = ("A", "B")) -> dict:
    """Figures of A − B over their common sentences (matched by id); a bound against an
    exact NLL is paired on the whole sequence (``mixed``)."""
    order = {sid: i for i, sid in enumerate(b["sentences"]["id"])}
    index = torch.tensor([order[sid] for sid in a["sentences"]["id"]])
    full = mixed(a, b)
    nats_a = torch.tensor(sentence_nats(a, full, names[0]), dtype=torch.float64)
    nats_b = torch.tensor(sentence_nats(b, full, names[1]), dtype=torch.float64)[index]
    diff = nats_a - nats_b
    n = len(diff)
    out = {"num_sentences": n, "level": level, "nats": "full_sequence" if full else "record"}
    if n < 2:
        raise UsageError(f"{n} common sentence(s): a paired comparison needs at least 2")
    quantile = t_quantile(level, n - 1)
    for unit in ("word", "token"):
        units = [float(u) for u in a["sentences"][f"{unit}s"]]
        total = math.fsum(units)
        if total <= 0:
            raise UsageError(
                f"the sentences count 0 {unit}s: no figure per {unit}; a damaged record? "
                "rerun compute_elbo.py --json"
            )
        difference = diff.sum().item() / total
        se = ratio_se(diff.tolist(), units)
        unpaired = math.hypot(ratio_se(nats_a.tolist(), units), ratio_se(nats_b.tolist(), units))
        out[f"per_{unit}"] = {
            "a": nats_a.sum().item() / total,
            "b": nats_b.sum().item() / total,
            "difference": difference,
            "paired_se": se,
            "interval": [difference - quantile * se, difference + quantile * se],
            "unpaired_se": unpaired,
            "unpaired_over_paired": unpaired / se if se > 0 else None,  # None: no paired spread
        }
    mean, se = out["per_word"]["difference"], out["per_word"]["paired_se"]
    t = mean / se if se > 0 else math.copysign(math.inf, mean) if mean else 0.0
    out["t"] = t if math.isfinite(t) else None  # None: every sentence differs by the same
    out["p_value"] = t_two_sided_p(t, n - 1)
    return out


def verdict(figures: dict) -> str:
    """``A lower``, ``B lower`` (the interval excludes 0) or ``undecided``."""
    low, high = figures["per_word"]["interval"]
    return "A lower" if high < 0 else "B lower" if low > 0 else "undecided"


def table(name_a: str, name_b: str, figures: dict, notes: list[str]) -> str:
    """The comparison of one pair as plain text."""
    level = round(100 * figures["level"])
    lines = [f"A = {name_a}", f"B = {name_b}", f"{figures['num_sentences']} paired sentences"]
    for unit in ("word", "token"):
        f = figures[f"per_{unit}"]
        low, high = f["interval"]
        ratio = f["unpaired_over_paired"]
        ratio = "no paired spread" if ratio is None else f"{ratio:.1f}× paired"
        lines.append(
            f"  nats/{unit:5}  A {f['a']:.4f}  B {f['b']:.4f}  A−B {f['difference']:+.4f} "
            f"± {f['paired_se']:.4f} (paired s.e.)  {level}% [{low:+.4f}, {high:+.4f}]  "
            f"unpaired s.e. {f['unpaired_se']:.4f} ({ratio})"
        )
    t = "infinite" if figures["t"] is None else f"{figures['t']:.2f}"
    lines.append(f"  paired t = {t}, p = {figures['p_value']:.3g}: {verdict(figures)}")
    lines.extend(
        f"  note: the noise is not shared ({note}): valid, but less cancels" for note in notes
    )
    if figures.get("nats") == "full_sequence":
        lines.append(f"  note: {MIXED_NOTE}")
    return "\n".join(lines)


def compare(paths: list[str], bound: str | None = None) -> list[dict]:
    """Every pair of the records at ``paths`` (``bound``'s from a grid run's per-sentence
    file): names, figures, verdict and noise notes."""
    records = {path: read_record(path, bound=bound) for path in paths}
    out = []
    for name_a, name_b in itertools.combinations(paths, 2):
        a, b = records[name_a], records[name_b]
        check_comparable(a, b, name_a, name_b)
        figures = paired(a, b, names=(name_a, name_b))
        out.append(
            {"a": name_a, "b": name_b, **figures, "verdict": verdict(figures),
             "noise_differs": [] if mixed(a, b) else noise_notes(a, b),
             "note": MIXED_NOTE if mixed(a, b) else None}
        )  # fmt: skip
    return out


def build_parser() -> Parser:
    p = Parser(prog="python3 -m evaluation.compare", description=__doc__)
    p.add_argument("records", nargs="+", help="two or more compute_elbo.py --json files")
    p.flag("--json", default=None, help="also write the comparisons to this file")
    p.flag("--bound", default=None, choices=GRID_BOUNDS, help=BOUND_HELP)
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if len(args.records) < 2:
        raise UsageError("give two or more compute_elbo.py --json files to compare")
    resolved = [Path(path).resolve() for path in args.records]
    twice = [path for path, real in zip(args.records, resolved, strict=True)
             if resolved.count(real) > 1]  # fmt: skip
    if twice:
        raise UsageError(f"{twice[0]} is given twice: give each record once")
    if args.json:
        check_output_file(args.json, "--json")
        check_outputs_apart({"--json": args.json},
                            {f"record {path}": path for path in args.records})  # fmt: skip
    results = compare(args.records, args.bound)
    require_finite(results, "the comparison", "the records' nats are too large to add up")
    for result in results:
        print(table(result["a"], result["b"], result, result["noise_differs"]))
    if args.json:
        write_json(Path(args.json), {"comparisons": results})
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
