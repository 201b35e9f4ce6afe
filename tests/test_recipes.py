"""Recipe-level comparisons (evaluation.recipes) and the ratio estimator's standard error
(evaluation.stats.ratio_se): by hand, against a bootstrap, and their coverage by simulation."""

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from evaluation import compare, recipes
from evaluation.stats import ratio_se, t_quantile
from experiments.recipe_coverage import DESIGNS, coverage, simulate


def bootstrap_se(y: np.ndarray, x: np.ndarray, rng: np.random.Generator, draws: int = 4000):
    """The bootstrap standard error of Σy / Σx over units resampled with replacement."""
    rows = rng.integers(0, len(y), size=(draws, len(y)))
    return (y[rows].sum(1) / x[rows].sum(1)).std(ddof=1)


def fixed_denominator_se(y: np.ndarray, x: np.ndarray) -> float:
    """The formula ratio_se replaces: sd(y)·√n / Σx, as if Σx were fixed."""
    return y.std(ddof=1) * math.sqrt(len(y)) / x.sum()


@pytest.mark.parametrize("case", ["nats grow with length", "constant difference"])
def test_ratio_se_agrees_with_a_bootstrap_where_a_fixed_denominator_is_far_off(case):
    rng = np.random.default_rng(3)
    words = rng.integers(1, 60, size=400).astype(float)
    if case == "nats grow with length":  # fixed Σx: the spread of lengths looks like noise
        y = 7.0 * words + rng.normal(0, 2.0, size=400)
    else:  # each sentence differs by about 1 nat whatever its length: Σx's spread matters
        y = 1.0 + rng.normal(0, 0.05, size=400)
    boot = bootstrap_se(y, words, rng)
    assert ratio_se(y.tolist(), words.tolist()) == pytest.approx(boot, rel=0.08)
    off = fixed_denominator_se(y, words) / boot
    assert off > 3 if case == "nats grow with length" else off < 1 / 3


def test_ratio_se_by_hand_and_its_refusals():
    y, x = [3.0, 5.0, 10.0], [1.0, 2.0, 3.0]
    r = 18.0 / 6.0
    squares = sum((yi - r * xi) ** 2 for yi, xi in zip(y, x, strict=True))
    assert ratio_se(y, x) == pytest.approx(math.sqrt(3 / 2 * squares) / 6.0)
    assert ratio_se([2.0], [1.0]) == 0.0
    with pytest.raises(ValueError):
        ratio_se([1.0, 2.0], [1.0])


def test_compare_uses_the_ratio_estimator(tmp_path):
    rng = np.random.default_rng(5)
    words = rng.integers(2, 50, size=60)
    a = 7.0 * words + rng.normal(0, 1, 60)
    b = 6.9 * words + rng.normal(0, 1, 60)
    records = []
    for name, nats in (("a", a), ("b", b)):
        record = _record(nats.tolist(), words.tolist(), seed=0)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(record))
        records.append(str(path))
    [result] = compare.compare(records)
    assert result["per_word"]["paired_se"] == pytest.approx(
        ratio_se((a - b).tolist(), words.tolist())
    )
    unpaired = math.hypot(
        ratio_se(a.tolist(), words.tolist()), ratio_se(b.tolist(), words.tolist())
    )
    assert result["per_word"]["unpaired_se"] == pytest.approx(unpaired)


def test_recipe_difference_by_hand():
    a = np.array([[10.0, 21.0, 5.0], [11.0, 20.0, 6.0]])
    b = np.array([[9.0, 20.5, 5.5], [10.0, 19.0, 5.0]])
    w = np.array([2.0, 4.0, 1.0])
    out = recipes.recipe_difference(a, b, w, paired=True)
    pairs = (a.sum(1) - b.sum(1)) / w.sum()
    assert out["per_pair"] == pytest.approx(pairs.tolist())
    assert out["difference"] == pytest.approx(pairs.mean())
    columns = a.mean(0) - b.mean(0)
    sentences = ratio_se(columns.tolist(), w.tolist()) ** 2
    seeds = pairs.var(ddof=1) / 2
    assert out["variance"] == pytest.approx({"sentences": sentences, "seeds": seeds})
    half = math.sqrt(t_quantile(0.95, 2) ** 2 * sentences + t_quantile(0.95, 1) ** 2 * seeds)
    assert out["interval"] == pytest.approx([pairs.mean() - half, pairs.mean() + half])
    assert out["se"] == pytest.approx(math.sqrt(sentences + seeds))
    unpaired = recipes.recipe_difference(a, b[:, :], w, paired=False)
    seeds_u = (a.sum(1) / 7).var(ddof=1) / 2 + (b.sum(1) / 7).var(ddof=1) / 2
    assert unpaired["variance"]["seeds"] == pytest.approx(seeds_u)
    assert "seeds_only" not in unpaired


@pytest.mark.parametrize("design", DESIGNS)
def test_the_recipe_interval_covers_where_a_t_over_seeds_does_not(design):
    """At nominal 95% the recipe-level interval covers ≥ 93% over 800 simulated studies (the
    binomial s.e. of a 95% coverage is 0.008, so 93% is 2.5 s.e. below nominal); where the
    shared sentences carry variance, a t over the seeds alone covers visibly less."""
    covered = coverage(DESIGNS[design], reps=800, seed=sum(map(ord, design)))
    assert covered["recipe_level"] >= 0.93
    if "sentences dominate" in design:
        assert covered["seeds_only"] < 0.8
    if design == "8 seeds, both":
        assert covered["seeds_only"] < 0.88


def _record(nats, words, seed, ids=None) -> dict:
    n = len(nats)
    return {
        "dataset": "wiki-summaries", "split": "test", "bound": "continuous",
        "protocol": "exact", "num_steps": 2048, "eval_step_size": None, "given_length": {},
        "noise": {"seed": seed, "estimator": "conditioned", "draws": 4, "proposal": None},
        "sentences": {"id": ids or [f"{i}:{i:012x}" for i in range(n)],
                      "tokens": [int(w) + 2 for w in words], "words": [int(w) for w in words],
                      "nats": list(nats)},
    }  # fmt: skip


def _study(tmp_path, seeds=3, noise=None, m=40):
    rng = np.random.default_rng(9)
    a, b, w = simulate(rng, seeds, seeds, m, 0.03, 1.0, 0.3, True)
    paths = {"a": [], "b": []}
    for name, nats in (("a", a), ("b", b)):
        for k, row in enumerate(nats):
            path = tmp_path / f"{name}{k + 1}.json"
            seed = (noise or list(range(1, seeds + 1)))[k]
            path.write_text(json.dumps(_record(row.tolist(), w.tolist(), seed)))
            paths[name].append(str(path))
    return paths, a, b, w


def test_recipes_command_on_records(tmp_path, capsys):
    paths, a, b, w = _study(tmp_path)
    out = tmp_path / "out.json"
    result = recipes.main(["--a", *paths["a"], "--b", *paths["b"], "--json", str(out)])
    expected = recipes.recipe_difference(a, b, w, paired=True)
    assert result["per_word"]["interval"] == pytest.approx(expected["interval"])
    assert json.loads(out.read_text())["verdict"] == result["verdict"]
    text = capsys.readouterr().out
    assert "pair 3: A−B" in text and "seeds only" not in text and "recipe level" in text
    assert result["notes"] == []


def test_recipes_notes_shared_noise(tmp_path):
    paths, *_ = _study(tmp_path, noise=[0, 0, 0])
    result = recipes.compare_recipes(paths["a"], paths["b"])
    assert len(result["notes"]) == 1 and "3 pairs share noise seed 0" in result["notes"][0]


def _fails(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        recipes.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    return err


def test_recipes_bad_input_is_one_line(tmp_path, capsys):
    paths, *_ = _study(tmp_path)
    one = _fails(capsys, ["--a", paths["a"][0], "--b", *paths["b"]])
    assert "--a has 1 file(s)" in one and "at least 2" in one
    uneven = _fails(capsys, ["--a", *paths["a"][:2], "--b", *paths["b"]])
    assert "--unpaired" in uneven
    twice = _fails(capsys, ["--a", paths["a"][0], paths["a"][0], "--b", *paths["b"][:2]])
    assert "given twice" in twice
    over = _fails(capsys, ["--a", *paths["a"], "--b", *paths["b"], "--json", paths["a"][1]])
    assert "--json" in over and "destroy an input" in over
    other = tmp_path / "other.json"
    record = json.loads(Path(paths["b"][2]).read_text())
    record["sentences"]["id"][0] = "999:000000000000"
    other.write_text(json.dumps(record))
    differ = _fails(capsys, ["--a", *paths["a"], "--b", *paths["b"][:2], str(other)])
    assert "sentences.id differs" in differ and str(other) in differ


def test_recipes_edge_cases(tmp_path, capsys):
    with pytest.raises(ValueError, match="shapes"):
        recipes.recipe_difference(np.ones((2, 1)), np.ones((2, 3)), np.ones(3), True)
    with pytest.raises(ValueError, match="2 sentences"):
        recipes.recipe_difference(np.ones((2, 1)), np.ones((2, 1)), np.ones(1), True)
    same = recipes.recipe_difference(np.ones((2, 4)), np.ones((2, 4)), np.ones(4), True)
    assert same["interval"] == [0.0, 0.0] and same["welch_satterthwaite_df"] is None
    nats, words = [3.0, 4.0], [0, 0]
    paths = []
    for k in range(4):
        path = tmp_path / f"r{k}.json"
        path.write_text(json.dumps(_record(nats, words, seed=k % 2)))
        paths.append(str(path))
    zero = _fails(capsys, ["--a", *paths[:2], "--b", *paths[2:]])
    assert "count 0 words" in zero
    one = []
    for k in range(4):
        path = tmp_path / f"one{k}.json"
        path.write_text(json.dumps(_record([3.0 + k], [2], seed=k % 2)))
        one.append(str(path))
    assert "at least 2 shared sentences" in _fails(capsys, ["--a", *one[:2], "--b", *one[2:]])
    out = tmp_path / "same.json"
    argv = ["--a", *_copies(tmp_path, "a"), "--b", *_copies(tmp_path, "b"), "--json", str(out)]
    recipes.main(argv)
    assert "Infinity" not in out.read_text() and "NaN" not in out.read_text()


def _copies(tmp_path, name: str) -> list[str]:
    """Two records with identical values: zero variance everywhere."""
    paths = []
    for k in range(2):
        path = tmp_path / f"{name}-copy{k}.json"
        path.write_text(json.dumps(_record([5.0, 7.0, 9.0], [2, 3, 4], seed=k)))
        paths.append(str(path))
    return paths


def test_seeds_needed_reproduces_the_reported_half_width_and_solves_by_hand():
    from evaluation.stats import seeds_needed, t_quantile

    rng = np.random.default_rng(3)
    for n, m in ((3, 40), (5, 200), (8, 60)):
        effect = rng.normal(0, 1, m)
        a = effect + rng.normal(0, 0.3, (n, 1)) + rng.normal(0, 0.5, (n, m))
        b = effect + rng.normal(0, 0.3, (n, 1)) + rng.normal(0, 0.5, (n, m))
        figures = recipes.recipe_difference(a, b, np.full(m, 4.0), paired=True)
        half = (figures["interval"][1] - figures["interval"][0]) / 2
        assert seeds_needed(figures, m, half * (1 + 1e-9)) == n  # n seeds reach it, n − 1 not
    # no sentence part: t_{n-1} · 0.05 / √n ≤ 0.04 first at n = 9 (t_7: 0.0418, t_8: 0.0384)
    figures = {"per_pair": [0.05 * x for x in (-1, 1)], "variance": {"sentences": 0.0}}
    sd = statistics.stdev(figures["per_pair"])
    figures["per_pair"] = [x * 0.05 / sd for x in figures["per_pair"]]
    assert seeds_needed(figures, 100, 0.04) == 9
    assert t_quantile(0.95, 7) * 0.05 / 8**0.5 > 0.04 >= t_quantile(0.95, 8) * 0.05 / 3
    floor = {**figures, "variance": {"sentences": (0.04 / 1.9) ** 2}}  # its own part > 0.04
    assert seeds_needed(floor, 100, 0.04) is None


def test_a_grid_runs_per_sentence_file_is_read_with_bound(tmp_path, capsys):
    """The grid's sentences/<row>-seed<k>.json hold both bounds: --bound picks one, and the
    figures are those of the same records given as compute_elbo.py files; without --bound, or
    with a bound the file lacks, one line says what to pass."""
    paths, *_ = _study(tmp_path)
    grid = {"a": [], "b": []}
    for name, files in paths.items():
        for k, path in enumerate(files):
            continuous = json.loads(Path(path).read_text())
            nats = [x + 1.0 for x in continuous["sentences"]["nats"]]
            sentences = {**continuous["sentences"], "nats": nats}
            discrete = {**continuous, "bound": "discrete", "sentences": sentences}
            both = tmp_path / f"grid-{name}{k}.json"
            both.write_text(json.dumps({"continuous": continuous, "discrete": discrete}))
            grid[name].append(str(both))
    plain = recipes.compare_recipes(paths["a"], paths["b"])
    picked = recipes.main(["--bound", "continuous", "--a", *grid["a"], "--b", *grid["b"]])
    assert picked["per_word"] == plain["per_word"]
    shifted = recipes.compare_recipes(grid["a"], grid["b"], bound="discrete")
    assert shifted["per_word"]["a"] > plain["per_word"]["a"]  # the other bound was read
    capsys.readouterr()
    unnamed = _fails(capsys, ["--a", *grid["a"], "--b", *grid["b"]])
    assert grid["a"][0] in unnamed and "--bound continuous or --bound discrete" in unnamed
    only = tmp_path / "only.json"
    only.write_text(json.dumps({"continuous": json.loads(Path(paths["a"][0]).read_text())}))
    lacking = _fails(capsys, ["--bound", "discrete", "--a", str(only), *grid["a"][1:],
                              "--b", *grid["b"]])  # fmt: skip
    assert "has no discrete bound" in lacking and "read it with --bound continuous" in lacking
    empty = tmp_path / "empty.json"  # the bound's key is there, its record is not
    empty.write_text(json.dumps({"continuous": json.loads(Path(paths["a"][0]).read_text()),
                                 "discrete": None}))  # fmt: skip
    hollow = _fails(capsys, ["--bound", "discrete", "--a", str(empty), *grid["a"][1:],
                             "--b", *grid["b"]])  # fmt: skip
    assert "has no discrete bound" in hollow and "--bound continuous" in hollow
    other = _fails(capsys, ["--bound", "discrete", "--a", *paths["a"], "--b", *paths["b"]])
    assert "a record of the continuous bound, not --bound discrete" in other
    pairs = compare.compare(grid["a"][:2], bound="continuous")
    assert pairs[0]["per_word"] == compare.compare(paths["a"][:2])[0]["per_word"]
