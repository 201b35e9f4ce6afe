"""The autoregressive-twin study's pieces: its flags, the judge of generative perplexity, a
recipe-level difference of bounds against exact NLLs, and the summary written from results."""

import json
import math

import pytest

from common.errors import UsageError
from evaluation.compare import compare
from evaluation.recipes import compare_recipes
from experiments.ar_twin.run import judge_of
from experiments.ar_twin.settings import parse_args
from experiments.ar_twin.summary import write_summary

WORDS, TOKENS = [3, 6, 2, 5], [4, 8, 3, 6]
IDS = [f"{i}:abc" for i in range(4)]


def bound_record(nats, length_nats, seed):
    given = {"num_sequences": 4, "num_tokens": sum(TOKENS), "num_words": sum(WORDS)}
    return {"bound": "continuous", "dataset": "wiki-summaries", "split": "test", "protocol":
            "exact", "num_steps": 2048, "eval_step_size": None, "given_length": given,
            "noise": {"seed": seed}, "sentences": {"id": IDS, "tokens": TOKENS, "words": WORDS,
            "nats": nats, "length_nats": length_nats}}  # fmt: skip


def exact_record(nats):
    return {"bound": "exact", "dataset": "wiki-summaries", "split": "test", "protocol": "exact",
            "num_steps": None, "eval_step_size": None, "given_length": None, "noise": None,
            "sentences": {"id": IDS[::-1], "tokens": TOKENS[::-1], "words": WORDS[::-1],
            "nats": nats[::-1]}}  # fmt: skip


SEEDS = {
    1: ([10.0, 21.0, 7.0, 15.0], [1.0, 2.0, 0.5, 1.5], [9.0, 20.0, 6.5, 14.0]),
    2: ([11.0, 20.0, 8.0, 14.0], [1.0, 2.0, 0.5, 1.5], [9.5, 19.0, 6.0, 15.0]),
}


@pytest.fixture
def records(tmp_path):
    paths = {}
    for seed, (nats, length, exact) in SEEDS.items():
        a, b = tmp_path / f"diffusion-{seed}.json", tmp_path / f"ar-{seed}.json"
        a.write_text(json.dumps(bound_record(nats, length, seed)))
        b.write_text(json.dumps(exact_record(exact)))
        paths[seed] = (a, b)
    return paths


def test_the_recipe_difference_of_bounds_and_exact_nlls_is_on_whole_sequences(records):
    result = compare_recipes([str(p[0]) for p in records.values()],
                             [str(p[1]) for p in records.values()])  # fmt: skip
    per_seed = [(sum(n) + sum(m) - sum(e)) / sum(WORDS) for n, m, e in SEEDS.values()]
    assert result["per_word"]["difference"] == pytest.approx(sum(per_seed) / 2)
    assert result["per_word"]["per_pair"] == pytest.approx(per_seed)
    assert any("exact NLL" in note for note in result["notes"])
    assert not any("noise seed" in note for note in result["notes"])


def test_the_summary_reports_each_pair_and_the_recipe(records, tmp_path):
    """Written from a results folder that has moved since the study ran (its results.json
    names the records where they were): the records are read from the folder's records/."""
    out = tmp_path / "results"
    (out / "records").mkdir(parents=True)
    budget = {}
    for seed, (a, b) in records.items():
        comparison = compare([str(a), str(b)])[0]
        for path in (a, b):
            path.rename(out / "records" / path.name)
        budget[f"seed{seed}-600"] = {"records": [str(a), str(b)], "comparison": comparison}
    (out / "results.json").write_text(json.dumps({"budget": budget}))
    text = write_summary(out)
    first = budget["seed1-600"]["comparison"]["per_word"]["difference"]
    assert f"{first:+.3f}" in text and "Over 2 seeds" in text
    assert (out / "summary.md").read_text() == text
    assert math.isclose(first, (53.0 + 5.0 - 49.5) / 16)


def test_the_judge_is_another_seeds_twin(tmp_path):
    args = parse_args(["--runs_dir", str(tmp_path), "--seeds", "1,2,3"])
    assert judge_of(args, 1) is None  # not trained yet
    (tmp_path / "ar-seed2" / "best").mkdir(parents=True)
    (tmp_path / "ar-seed1" / "best").mkdir(parents=True)
    assert judge_of(args, 1) == tmp_path / "ar-seed2" / "best"
    assert judge_of(args, 3) == tmp_path / "ar-seed1" / "best"
    alone = parse_args(["--runs_dir", str(tmp_path), "--seeds", "1"])
    assert judge_of(alone, 1) is None  # never its own twin


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--long_points", "600,1000"], "multiple of --save_steps"),
        (["--phases", "budget,later"], "choose from budget, long, frontier"),
        (["--seeds", "1,1"], "distinct integers"),
    ],
)
def test_bad_flags_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_twin_trains_in_the_grids_precision_and_a_mixed_pair_is_refused(tmp_path):
    from experiments.ablation.folders import same_precision
    from experiments.ar_twin.run import ar_flags

    args = parse_args([])
    flags = [str(f) for f in ar_flags(args.budget, 1, 600, tmp_path / "ar")]
    assert flags[flags.index("--bf16") + 1] == "false"  # fp32 on every machine, as the grid
    on = parse_args(["--budget=--bf16"])
    flags = [str(f) for f in ar_flags(on.budget, 1, 600, tmp_path / "ar")]
    assert flags[flags.index("--bf16") + 1] == "true"
    runs = {}
    for name, precision in (("diffusion", "fp32"), ("ar", "bf16")):
        (tmp_path / name / "best").mkdir(parents=True)
        record = {"resolved": {"precision": precision}}
        (tmp_path / name / "best" / "training_args.json").write_text(json.dumps(record))
        runs[name] = tmp_path / name
    assert same_precision({"diffusion": runs["diffusion"]}) == "fp32"
    with pytest.raises(
        UsageError, match=r"different precisions: diffusion .* in fp32, ar .* in bf16"
    ):
        same_precision(runs)


def test_the_summary_tables_and_draws_the_frontier(tmp_path):
    """Each frontier point is one table row (its setting, generative perplexity and entropy as
    recorded); frontier.png is drawn from the points that have a generative perplexity."""
    from experiments.ar_twin.summary import frontier_rows

    points = [
        {"model": "ar", "temperature": 0.7, "topp": 0.9, "sample_steps": None, "gen_ppl": 12.5,
         "unigram_entropy_nats": 4.25, "bleu": 0.3, "self_bleu": 0.2, "dist_1": 0.7},
        {"model": "diffusion", "temperature": 1.0, "topp": 1.0, "sample_steps": 32,
         "gen_ppl": 140.0, "unigram_entropy_nats": 4.75, "bleu": 0.05, "self_bleu": 0.01,
         "dist_1": 0.8},
    ]  # fmt: skip
    rows = frontier_rows(points)
    assert "| ar | 0.7 | 0.9 | — | 12.500 | 4.250 | 0.300 | 0.200 | 0.700 |" in rows
    assert "| diffusion | 1.0 | 1.0 | 32 | 140.000 | 4.750 | 0.050 | 0.010 | 0.800 |" in rows
    assert frontier_rows([]) == []
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"frontier": points}))
    text = write_summary(out)
    assert "| diffusion | 1.0 | 1.0 | 32 | 140.000 |" in text and "![frontier.png]" in text
    assert (out / "frontier.png").stat().st_size > 1000
