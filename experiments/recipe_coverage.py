"""Does the recipe-level interval (evaluation.recipes) cover? Simulated studies with known
variance components: seeds, sentences shared by every seed, and per-sentence draws, on
sentences of uneven length. Prints, per design, the coverage of the recipe-level 95% interval
and of a t over the seeds alone, and writes them to a JSON file.

python3 -m experiments.recipe_coverage [--reps 3000] [--json FILE]
"""

from __future__ import annotations

from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import numpy as np

from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import write_json
from evaluation.recipes import recipe_difference

TRUE_DIFFERENCE = 0.05  # nats per word, A − B

# name: (seeds of A, seeds of B, sentences, seed sd, sentence sd, draw sd, paired)
DESIGNS = {
    "3 seeds, seeds dominate": (3, 3, 100, 0.03, 0.2, 0.3, True),
    "3 seeds, no sentence effect": (3, 3, 100, 0.03, 0.0, 0.3, True),
    "3 seeds, shared sentences dominate": (3, 3, 100, 0.01, 1.5, 0.3, True),
    "5 seeds, shared sentences dominate": (5, 5, 150, 0.02, 1.5, 0.3, True),
    "8 seeds, both": (8, 8, 300, 0.03, 1.5, 1.0, True),
    "3 against 6 seeds, unpaired": (3, 6, 150, 0.03, 1.0, 0.3, False),
}


def simulate(
    rng: np.random.Generator,
    n_a: int,
    n_b: int,
    m: int,
    seed_sd: float,
    sentence_sd: float,
    noise_sd: float,
    paired: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nats (n_a, m) and (n_b, m) of two recipes' seeds on m shared sentences, and the
    sentences' words (m,), uneven (3–40). Each sentence scores 7 nats a word (A: 7.05) plus
    what both recipes share on it, a sentence effect of A − B that every seed shares (sd
    ``sentence_sd`` · √words), a seed effect per word (sd ``seed_sd``; B's seed s shares half
    of A's seed s when ``paired``) and per-sentence draws (sd ``noise_sd`` · √words). The
    recipes' true difference per word is ``TRUE_DIFFERENCE``."""
    w = rng.integers(3, 41, size=m).astype(float)
    common = rng.normal(0, 1.0, size=m) * w
    sentence = rng.normal(0, sentence_sd, size=m) * np.sqrt(w)
    seed_a = rng.normal(0, seed_sd, size=n_a)
    seed_b = rng.normal(0, seed_sd, size=n_b) + (0.5 * seed_a if paired else 0.0)

    def draws(n: int) -> np.ndarray:
        return rng.normal(0, noise_sd, (n, m)) * np.sqrt(w)

    a = (7.0 + TRUE_DIFFERENCE) * w + common + sentence + seed_a[:, None] * w + draws(n_a)
    b = 7.0 * w + common + seed_b[:, None] * w + draws(n_b)
    return a, b, w


def coverage(design: tuple, reps: int, seed: int) -> dict[str, float]:
    """Share of ``reps`` simulated studies whose 95% intervals contain the true difference:
    the recipe-level one, and (paired designs) the t over the seeds alone."""
    rng = np.random.default_rng(seed)
    covered = {"recipe_level": 0, "seeds_only": 0}
    for _ in range(reps):
        a, b, w = simulate(rng, *design)
        out = recipe_difference(a, b, w, paired=design[-1])
        for key, figures in (("recipe_level", out), ("seeds_only", out.get("seeds_only"))):
            if figures is not None:
                low, high = figures["interval"]
                covered[key] += low <= TRUE_DIFFERENCE <= high
    return {
        "recipe_level": covered["recipe_level"] / reps,
        "seeds_only": covered["seeds_only"] / reps if design[-1] else None,
    }


def build_parser() -> Parser:
    p = Parser(prog="python3 -m experiments.recipe_coverage", description=__doc__)
    p.flag("--reps", type=int, default=3000, help="simulated studies per design")
    p.flag("--seed", type=int, default=0, help="seeds the simulation")
    p.flag("--json", default="experiments/results/recipe_coverage.json", help="results file")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.reps < 1:
        raise UsageError(f"--reps must be ≥ 1, got {args.reps}")
    results = {}
    for k, (name, design) in enumerate(DESIGNS.items()):
        results[name] = {"design": design, **coverage(design, args.reps, args.seed + k)}
        seeds_only = results[name]["seeds_only"]
        print(
            f"{name}: recipe level {results[name]['recipe_level']:.3f}"
            + ("" if seeds_only is None else f", seeds only {seeds_only:.3f}")
        )
    write_json(Path(args.json), {"reps": args.reps, "seed": args.seed, "level": 0.95,
                                 "designs": results})  # fmt: skip
    print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
