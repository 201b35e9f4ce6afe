"""python3 -m evaluation.compare: paired figures by hand, and every refusal as one line."""

import json
import math

import pytest

from evaluation import compare
from evaluation.stats import t_quantile, t_two_sided_p


def record(nats, ids=None, tokens=None, words=None, **settings) -> dict:
    """A compute_elbo.py --json record with the given per-sentence bounds."""
    n = len(nats)
    base = {
        "dataset": "wiki-summaries", "split": "test", "bound": "discrete", "protocol": "exact",
        "num_steps": 2048, "eval_step_size": 16, "given_length": {},
        "noise": {"seed": 0, "estimator": None, "draws": 1, "proposal": None},
    }  # fmt: skip
    base.update(settings)
    base["sentences"] = {
        "id": ids or [f"{i}:{i:012x}" for i in range(n)],
        "tokens": tokens or [10] * n,
        "words": words or [8] * n,
        "nats": list(nats),
    }
    return base


def write(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_paired_figures_by_hand(tmp_path):
    a = [30.0, 41.0, 25.0, 52.0, 38.0]
    b = [31.0, 41.5, 26.5, 52.5, 39.0]
    d = [x - y for x, y in zip(a, b, strict=True)]
    n, mean = len(d), sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    # B's sentences in another order: matched by id, not position
    order = [3, 0, 4, 1, 2]
    ids = [f"{i}:{i:012x}" for i in range(n)]
    rec_b = record([b[i] for i in order], ids=[ids[i] for i in order])
    path_a, path_b = write(tmp_path, "a.json", record(a)), write(tmp_path, "b.json", rec_b)
    [result] = compare.main([path_a, path_b, "--json", str(tmp_path / "out.json")])
    per_word = result["per_word"]
    assert per_word["difference"] == pytest.approx(sum(d) / (8 * n))
    assert per_word["paired_se"] == pytest.approx(sd * math.sqrt(n) / (8 * n))
    half = t_quantile(0.95, n - 1) * per_word["paired_se"]
    assert per_word["interval"] == pytest.approx([sum(d) / 40 - half, sum(d) / 40 + half])
    t = mean / (sd / math.sqrt(n))
    assert result["p_value"] == pytest.approx(t_two_sided_p(t, n - 1))
    assert result["per_token"]["difference"] == pytest.approx(sum(d) / (10 * n))
    var = lambda xs: sum((x - sum(xs) / n) ** 2 for x in xs) / (n - 1)  # noqa: E731
    unpaired = math.sqrt(var(a) + var(b)) * math.sqrt(n) / (8 * n)
    assert per_word["unpaired_se"] == pytest.approx(unpaired)
    assert per_word["unpaired_over_paired"] > 5  # the sentences' spread cancels in pairs
    assert result["verdict"] == "A lower"
    written = json.loads((tmp_path / "out.json").read_text())["comparisons"][0]
    assert written["per_word"]["difference"] == pytest.approx(per_word["difference"])


def test_undecided_and_reversed(tmp_path):
    a, b = [10.0, 12.0, 9.0, 11.0], [10.5, 11.0, 9.5, 10.8]
    result = compare.compare([write(tmp_path, "a.json", record(a)),
                              write(tmp_path, "b.json", record(b))])[0]  # fmt: skip
    assert result["verdict"] == "undecided"
    assert result["per_word"]["interval"][0] < 0 < result["per_word"]["interval"][1]
    three = compare.compare([write(tmp_path, "b.json", record([x + 1 for x in a])),
                             write(tmp_path, "a.json", record(a)),
                             write(tmp_path, "c.json", record([x + 2 for x in a]))])  # fmt: skip
    assert [r["verdict"] for r in three] == ["B lower", "A lower", "A lower"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dataset": "toy"}, "field dataset differs: 'wiki-summaries' in"),
        ({"protocol": "official"}, "field protocol differs"),
        ({"num_steps": 1024}, "field num_steps differs: 2048 in"),
        ({"eval_step_size": 32}, "field eval_step_size differs: 16 in"),
        ({"bound": "continuous", "eval_step_size": None}, "field bound differs"),
    ],
)
def test_refuses_different_settings(tmp_path, capsys, change, field):
    a = write(tmp_path, "a.json", record([1.0, 2.0, 3.0]))
    b = write(tmp_path, "b.json", record([1.0, 2.0, 3.0], **change))
    with pytest.raises(SystemExit) as exit_info:
        compare.main([a, b])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and "b.json" in err


@pytest.mark.parametrize(
    ("b_kwargs", "message"),
    [
        ({"ids": ["0:a", "1:b", "9:c"]}, "field sentences.id differs: 3 sentences in"),
        ({"tokens": [10, 11, 10]}, "field sentences.tokens differs for sentence 1:"),
        ({"words": [8, 8, 7]}, "field sentences.words differs for sentence 2:"),
    ],
)
def test_refuses_different_sentences(tmp_path, capsys, b_kwargs, message):
    a = write(tmp_path, "a.json", record([1.0, 2.0, 3.0], ids=["0:a", "1:b", "2:c"]))
    b_kwargs.setdefault("ids", ["0:a", "1:b", "2:c"])
    b = write(tmp_path, "b.json", record([1.0, 2.0, 3.0], **b_kwargs))
    with pytest.raises(SystemExit):
        compare.main([a, b])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_bad_files_are_one_line(tmp_path, capsys):
    good = write(tmp_path, "good.json", record([1.0, 2.0]))
    old = record([1.0, 2.0])
    del old["sentences"]
    torn = json.dumps(record([1.0, 2.0]))[:-40]
    short = record([1.0, 2.0])
    short["sentences"]["nats"] = [1.0]
    null = record([1.0, None])
    text = record(["1.5", 2.0])
    negative = record([1.0, 2.0], tokens=[10, -3])
    twice = record([1.0, 2.0], ids=["0:a", "0:a"])
    rows = record([1.0, 2.0])
    rows["sentences"] = [{"id": "0:a", "nats": 1.0}]
    cases = [
        (write(tmp_path, "rows.json", rows), "field sentences is a list, not the table"),
        (write(tmp_path, "old.json", old), "field sentences is missing"),
        (write(tmp_path, "torn.json", torn), "not a complete JSON record (line 1"),
        (write(tmp_path, "list.json", "[1, 2]"), "not a compute_elbo.py --json record"),
        (write(tmp_path, "short.json", short), "columns differ in length"),
        (write(tmp_path, "null.json", null), "field sentences.nats, entry 2, is None"),
        (write(tmp_path, "text.json", text), "field sentences.nats, entry 1, is '1.5'"),
        (write(tmp_path, "neg.json", negative), "field sentences.tokens, entry 2, is -3"),
        (write(tmp_path, "twice.json", twice), "field sentences.id repeats an id"),
        (
            write(tmp_path, "nan.json", json.dumps(record([1.0, 2.0])).replace("2.0]", "NaN]")),
            "field sentences.nats, entry 2, is nan",
        ),
        (str(tmp_path / "absent.json"), "cannot be read"),
    ]
    for path, message in cases:
        with pytest.raises(SystemExit):
            compare.main([good, path])
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and path in err, err
    with pytest.raises(SystemExit):
        compare.main([good])
    assert "two or more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.main([good, good])
    assert f"{good} is given twice" in capsys.readouterr().err
    other_spelling = str(tmp_path / "." / "good.json")
    (tmp_path / "link.json").symlink_to(tmp_path / "good.json")
    for again in (other_spelling, str(tmp_path / "link.json")):
        with pytest.raises(SystemExit):
            compare.main([good, again])
        assert "is given twice" in capsys.readouterr().err


def test_no_paired_spread_is_written_as_valid_json(tmp_path, capsys):
    """Every sentence differing by the same amount: no paired spread, an infinite t. The
    figures say so in words and the JSON stays standard (no Infinity)."""
    a = write(tmp_path, "a.json", record([1.0, 2.0, 3.5]))
    b = write(tmp_path, "b.json", record([2.0, 3.0, 4.5]))
    out = tmp_path / "out.json"
    [result] = compare.main([a, b, "--json", str(out)])
    assert result["t"] is None and result["p_value"] == 0.0
    assert result["per_word"]["unpaired_over_paired"] is None
    assert result["verdict"] == "A lower"
    printed = capsys.readouterr().out
    assert "no paired spread" in printed and "paired t = infinite" in printed
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard {c}"))


def test_noise_differences_are_noted_not_refused(tmp_path, capsys):
    a = write(tmp_path, "a.json", record([1.0, 2.0, 3.5]))
    b = write(tmp_path, "b.json", record([1.5, 2.0, 3.0], noise={"seed": 1, "draws": 1}))
    [result] = compare.main([a, b])
    assert result["noise_differs"] == ["seed: 0 vs 1"]
    assert "the noise is not shared (seed: 0 vs 1)" in capsys.readouterr().out


def test_the_json_output_is_never_one_of_the_records(tmp_path, capsys):
    path_a = write(tmp_path, "a.json", record([30.0, 41.0, 25.0]))
    path_b = write(tmp_path, "b.json", record([31.0, 40.0, 26.0]))
    link = tmp_path / "same-as-a.json"
    link.symlink_to(path_a)
    before = (tmp_path / "a.json").read_text()
    for out in (path_a, str(link)):
        with pytest.raises(SystemExit) as exit_info:
            compare.main([path_a, path_b, "--json", out])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "destroy an input" in err and err.count("\n") == 1
    assert (tmp_path / "a.json").read_text() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(noise=None), "field noise is missing or not an object"),
        (lambda r: r["sentences"].update(nats=[1e308] * 3), "field sentences.nats, entry 1"),
        (lambda r: r["sentences"].update(words=[0, 0, 0]), "count 0 words"),
    ],
)
def test_records_that_cannot_give_a_finite_figure_are_one_line(tmp_path, capsys, change, message):
    bad = record([30.0, 41.0, 25.0])
    change(bad)
    other = record([31.0, 40.0, 26.0], words=bad["sentences"]["words"] or None)
    paths = [write(tmp_path, "bad.json", bad), write(tmp_path, "other.json", other)]
    with pytest.raises(SystemExit) as exit_info:
        compare.main(paths)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1, err


def test_a_proposal_holding_nan_is_refused(tmp_path):
    from evaluation.records import read_proposal

    proposal = {"edges": [0.0, 0.5, 1.0], "density": [float("nan"), 1.0]}
    rec = record([3.0, 4.0], noise={"seed": 0, "estimator": "importance", "draws": 1,
                                    "proposal": proposal})  # fmt: skip
    path = tmp_path / "p.json"
    path.write_text(json.dumps(rec))  # Python writes NaN, as a damaged file would hold it
    with pytest.raises(compare.UsageError, match=r"noise\.proposal is damaged.*finite"):
        read_proposal(path)
