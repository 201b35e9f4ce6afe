"""Is recipe A better than recipe B? A difference of two training recipes, each trained with
several seeds and bounded on one set of sentences, with an interval that counts every source of
noise: the training seeds, the test sentences (shared by every seed) and the bound's own
Monte Carlo draws.

python3 -m evaluation.recipes --a A1.json A2.json A3.json --b B1.json B2.json B3.json

Each file is a compute_elbo.py --json record of one checkpoint (or, with --bound, a grid run's
per-sentence file). File k of --a and file k of --b are one training seed's pair (same seed,
same noise seed: common random numbers within the pair); --unpaired drops that pairing.

The method (docs/paired.md, "Recipes"): seed s of recipe A has per-sentence bounds a_si on
the m shared sentences, with w_i words. The estimate is D = (mean_s Σ_i a_si − mean_s Σ_i b_si)
/ Σ_i w_i, and its variance is the sum of two parts estimated from the data:
- the sentences: c_i = mean_s a_si − mean_s b_si, the ratio estimator's variance of
  Σ c_i / Σ w_i over sentences (``ratio_se``);
- the seeds: the per-unit figure of each seed (or of each seed's pair), its variance over seeds
  divided by the number of seeds.
A draw's Monte Carlo error is in the seeds' part when each pair has its own noise seed, in the
sentences' part when every pair shares one. The sentence-by-seed interaction (the draws'
per-sentence noise included) is counted in both parts, so the variance is conservative: slightly
where seeds or sentences dominate, by up to 2× (√2 in width) where the draws' noise dominates. The
half-width adds each part's own t half-width (t at its degrees of freedom: sentences − 1, seeds − 1)
in quadrature; why, and its coverage in simulation against a t over the seeds alone: docs/paired.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import numpy as np

from common.checks import check_output_file, check_outputs_apart, require_finite
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import write_json
from evaluation.compare import MIXED_NOTE, check_comparable, sentence_nats
from evaluation.records import BOUND_HELP, GRID_BOUNDS, is_exact, read_record
from evaluation.stats import ratio_se, t_quantile


@dataclass(frozen=True)
class Interval:
    """A difference per unit with its standard error, degrees of freedom and interval."""

    difference: float
    se: float
    df: float | None
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"difference": self.difference, "se": self.se,
                "welch_satterthwaite_df": self.df, "interval": [self.low, self.high]}  # fmt: skip


def _interval(difference: float, parts: Sequence[tuple[float, float]], level: float) -> Interval:
    """The interval of ``difference`` from independent variance ``parts`` (variance, degrees
    of freedom): each part's half-width t_df · √variance, added in quadrature. One part gives
    the t interval; many parts never less than their own t intervals (the quadrature is
    conservative where Welch–Satterthwaite is not with 3 seeds). ``df`` reported: the
    Welch–Satterthwaite one, for information."""
    variance = math.fsum(v for v, _ in parts)
    if variance <= 0:
        return Interval(difference, 0.0, None, difference, difference)
    half = math.sqrt(math.fsum(t_quantile(level, d) ** 2 * v for v, d in parts))
    df = variance**2 / math.fsum(v * v / d for v, d in parts if v > 0)
    return Interval(difference, math.sqrt(variance), df, difference - half, difference + half)


def recipe_difference(
    a: np.ndarray, b: np.ndarray, units: np.ndarray, paired: bool, level: float = 0.95
) -> dict:
    """Recipe A − recipe B per unit (word or token) with an interval over seeds and sentences.

    Args: a (S_A, m) and b (S_B, m) nats of each seed on each of the m shared sentences;
    units (m,) the sentences' words (or tokens); ``paired``: row s of a and row s of b are one
    seed's pair (S_A = S_B). Returns the difference, its interval, the two variance parts,
    each seed's (or pair's) figure, and a t over seeds alone for contrast.
    """
    a, b, units = (np.asarray(x, dtype=np.float64) for x in (a, b, units))
    if a.ndim != 2 or b.ndim != 2 or not a.shape[1] == b.shape[1] == len(units):
        raise ValueError(f"recipe_difference: shapes {a.shape}, {b.shape}, {units.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("recipe_difference: at least 2 seeds per recipe")
    if len(units) < 2 or units.sum() <= 0:
        raise ValueError("recipe_difference: at least 2 sentences and a positive unit count")
    if paired and len(a) != len(b):
        raise ValueError("recipe_difference: paired seeds need as many seeds in A as in B")
    total = units.sum()
    per_seed_a, per_seed_b = a.sum(1) / total, b.sum(1) / total
    difference = float(per_seed_a.mean() - per_seed_b.mean())
    columns = a.mean(0) - b.mean(0)
    sentence_var = ratio_se(columns.tolist(), units.tolist()) ** 2
    parts = [(sentence_var, len(units) - 1)]
    if paired:
        pairs = per_seed_a - per_seed_b
        parts.append((float(pairs.var(ddof=1)) / len(pairs), len(pairs) - 1))
    else:
        pairs = None
        parts.append((float(per_seed_a.var(ddof=1)) / len(a), len(a) - 1))
        parts.append((float(per_seed_b.var(ddof=1)) / len(b), len(b) - 1))
    interval = _interval(difference, parts, level)
    seed_var = math.fsum(v for v, _ in parts[1:])
    out = {
        "a": float(per_seed_a.mean()),
        "b": float(per_seed_b.mean()),
        **interval.as_dict(),
        "variance": {"sentences": sentence_var, "seeds": seed_var},
        "per_seed_a": per_seed_a.tolist(),
        "per_seed_b": per_seed_b.tolist(),
    }
    if pairs is not None:
        out["per_pair"] = pairs.tolist()
        out["seeds_only"] = _interval(difference, parts[1:], level).as_dict()
    return out


def verdict(figures: dict) -> str:
    """``A lower``, ``B lower`` (the interval excludes 0) or ``undecided``."""
    low, high = figures["interval"]
    return "A lower" if high < 0 else "B lower" if low > 0 else "undecided"


def _aligned(records: list[dict], names: list[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """The shared sentence ids (in the first record's order) and every record's nats, tokens
    and words in that order (whole-sequence nats where bounds meet exact NLLs,
    ``evaluation.compare.mixed``); one line naming two files whose sentences differ."""
    ids = records[0]["sentences"]["id"]
    for record, name in zip(records[1:], names[1:], strict=True):
        check_comparable(records[0], record, names[0], name)
    bounds = [(r, n) for r, n in zip(records, names, strict=True) if not is_exact(r)]
    for record, name in bounds[1:]:  # the bounds among themselves, whichever record is first
        check_comparable(bounds[0][0], record, bounds[0][1], name)
    full = len({is_exact(record) for record in records}) > 1  # bounds with exact NLLs
    columns: dict[str, list] = {"nats": []}
    for record, name in zip(records, names, strict=True):
        order = {sid: i for i, sid in enumerate(record["sentences"]["id"])}
        nats = sentence_nats(record, full, name)
        columns["nats"].append([nats[order[sid]] for sid in ids])
    first = records[0]["sentences"]
    return ids, {
        "nats": np.array(columns["nats"], dtype=np.float64),
        "words": np.array(first["words"], dtype=np.float64),
        "tokens": np.array(first["tokens"], dtype=np.float64),
    }


def noise_seed(record: dict) -> object:
    return (record.get("noise") or {}).get("seed")


def pairing_notes(records_a: list[dict], records_b: list[dict], names_a, names_b) -> list[str]:
    """What the noise seeds say about the design: pairs bounded with different noise (valid,
    less cancels), and noise seeds shared across pairs (valid: that Monte Carlo error is then
    counted with the sentences, where more seeds do not average it out)."""
    notes = []
    pairs = list(zip(records_a, records_b, names_a, names_b, strict=True))
    pairs = [pair for pair in pairs if not (is_exact(pair[0]) or is_exact(pair[1]))]
    for ra, rb, na, nb in pairs:
        if noise_seed(ra) != noise_seed(rb):
            notes.append(
                f"{na} and {nb} are one pair but were bounded with noise seeds "
                f"{noise_seed(ra)!r} and {noise_seed(rb)!r}: valid, but their noise does not "
                "cancel"
            )
    shared: dict[object, list[str]] = {}
    for ra, _, na, _ in pairs:
        if noise_seed(ra) is not None:
            shared.setdefault(noise_seed(ra), []).append(na)
    for seed, files in shared.items():
        if len(files) > 1:
            notes.append(
                f"{len(files)} pairs share noise seed {seed!r} ({', '.join(files)}): valid (that "
                "Monte Carlo error is counted with the sentences), but more seeds do not average "
                "it out; bound each pair with its own --seed"
            )
    return notes


def compare_recipes(paths_a: list[str], paths_b: list[str], paired: bool = True,
                    level: float = 0.95, bound: str | None = None) -> dict:  # fmt: skip
    """Recipe A − recipe B per word and per token from compute_elbo.py records, one per seed
    (``bound``'s from a grid run's per-sentence file)."""
    for flag, paths in (("--a", paths_a), ("--b", paths_b)):
        if len(paths) < 2:
            raise UsageError(
                f"{flag} has {len(paths)} file(s): a recipe-level interval needs at least 2 "
                "training seeds per recipe (with one, compare the checkpoints with python3 -m "
                "evaluation.compare)"
            )
    names = [*paths_a, *paths_b]
    resolved = [Path(p).resolve() for p in names]
    for name, real in zip(names, resolved, strict=True):
        if resolved.count(real) > 1:
            raise UsageError(f"{name} is given twice: give each seed's record once")
    if paired and len(paths_a) != len(paths_b):
        raise UsageError(
            f"--a has {len(paths_a)} seeds and --b {len(paths_b)}: pairs need as many in each "
            "(file k of --a with file k of --b); pass --unpaired for seeds that are not pairs"
        )
    records = [read_record(path, bound=bound) for path in names]
    _, columns = _aligned(records, names)
    if columns["nats"].shape[1] < 2:
        raise UsageError(
            f"{names[0]}: {columns['nats'].shape[1]} sentence(s): a recipe-level interval "
            "needs at least 2 shared sentences"
        )
    for unit in ("words", "tokens"):
        if columns[unit].sum() <= 0:
            raise UsageError(
                f"{names[0]}: the sentences count 0 {unit}: no figure per {unit[:-1]}; a "
                "damaged record? rerun compute_elbo.py --json"
            )
    a, b = columns["nats"][: len(paths_a)], columns["nats"][len(paths_a) :]
    out: dict = {"a": paths_a, "b": paths_b, "paired": paired, "num_sentences": a.shape[1],
                 "level": level}  # fmt: skip
    for unit in ("word", "token"):
        out[f"per_{unit}"] = recipe_difference(a, b, columns[f"{unit}s"], paired, level)
    out["verdict"] = verdict(out["per_word"])
    rec_a, rec_b = records[: len(paths_a)], records[len(paths_a) :]
    out["notes"] = pairing_notes(rec_a, rec_b, paths_a, paths_b) if paired else []
    if any(map(is_exact, records)) and not all(map(is_exact, records)):
        out["notes"].append(MIXED_NOTE)
    return out


def table(result: dict) -> str:
    """The comparison as plain text."""
    level = round(100 * result["level"])
    n_a, n_b = len(result["a"]), len(result["b"])
    design = "paired by seed" if result["paired"] else "unpaired seeds"
    lines = [
        f"recipe A: {n_a} seeds, recipe B: {n_b} seeds, {result['num_sentences']} shared "
        f"sentences, {design}"
    ]
    if result["paired"]:
        for k, d in enumerate(result["per_word"]["per_pair"], 1):
            lines.append(f"  pair {k}: A−B {d:+.4f} nats/word")
    for unit in ("word", "token"):
        f = result[f"per_{unit}"]
        low, high = f["interval"]
        total = f["variance"]["sentences"] + f["variance"]["seeds"]
        share = f["variance"]["seeds"] / total if total > 0 else 0.0
        lines.append(
            f"  nats/{unit:5}  A {f['a']:.4f}  B {f['b']:.4f}  A−B {f['difference']:+.4f} ± "
            f"{f['se']:.4f} (s.e. over seeds, sentences and draws)  {level}% [{low:+.4f}, "
            f"{high:+.4f}] (the seeds' and the sentences' t half-widths in quadrature; seeds "
            f"{100 * share:.0f}% of the variance, sentences {100 * (1 - share):.0f}%)"
        )
    seeds_only = result["per_word"].get("seeds_only")
    if seeds_only:
        low, high = seeds_only["interval"]
        lines.append(
            f"  for contrast, a t over the seeds alone (ignores the shared sentences): "
            f"[{low:+.4f}, {high:+.4f}]"
        )
    lines.append(f"  verdict at the recipe level: {result['verdict']}")
    lines.extend(f"  note: {note}" for note in result["notes"])
    return "\n".join(lines)


def build_parser() -> Parser:
    p = Parser(prog="python3 -m evaluation.recipes", description=__doc__)
    p.add_argument("--a", nargs="+", required=True, help="recipe A: one record per seed")
    p.add_argument("--b", nargs="+", required=True, help="recipe B: one record per seed")
    p.boolean("--unpaired", help="the seeds of A and B are not pairs (other seeds or noise)")
    p.flag("--json", default=None, help="also write the comparison to this file")
    p.flag("--bound", default=None, choices=GRID_BOUNDS, help=BOUND_HELP)
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.json:
        check_output_file(args.json, "--json")
        check_outputs_apart({"--json": args.json},
                            {f"record {path}": path for path in [*args.a, *args.b]})  # fmt: skip
    result = compare_recipes(args.a, args.b, paired=not args.unpaired, bound=args.bound)
    require_finite(result, "the comparison", "the records' nats are too large to add up")
    print(table(result))
    if args.json:
        write_json(Path(args.json), result)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
