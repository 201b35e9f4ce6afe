"""The real-English seq2seq study's labels of the paper's claim and its pooling over seeds."""

import json

import pytest

from experiments.seq2seq_wiki.run import parse_args
from experiments.seq2seq_wiki.summary import label, pooled


@pytest.mark.parametrize(
    ("metric", "interval", "baseline", "expected"),
    [
        ("bleu", [-0.04, 0.02], 0.5, "confirmed"),  # above −10% of 0.5: comparable
        ("bleu", [-0.2, -0.06], 0.5, "reversed"),
        ("bleu", [-0.1, 0.0], 0.5, "undecided"),
        ("self_bleu", [-0.2, -0.1], 0.4, "confirmed"),  # lower self-BLEU: more diverse
        ("div_4", [-0.2, -0.1], 0.4, "reversed"),
        ("distinct_1", [-0.01, 0.03], 0.8, "undecided"),
    ],
)
def test_the_claim_is_labelled_from_the_interval(metric, interval, baseline, expected):
    assert label(metric, {"interval": interval, "b": baseline}) == expected


def test_seeds_are_pooled_source_by_source(tmp_path):
    files = []
    for seed, scores in ((1, [0.2, 0.4]), (2, [0.6, 0.0])):
        path = tmp_path / f"{seed}.json"
        path.write_text(json.dumps({"per_source": {"source": ["a", "b"], "bleu": scores}}))
        files.append(str(path))
    assert pooled(files) == {"source": ["a", "b"], "bleu": pytest.approx([0.4, 0.2])}


def test_an_unknown_task_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--tasks", "wiki-keywords,qqp"])
    assert exit_info.value.code == 2 and "choose from wiki-keywords, wiki-next" in (
        capsys.readouterr().err
    )


def test_every_run_trains_in_fp32_unless_asked(tmp_path, monkeypatch):
    from experiments.seq2seq_wiki import run as study

    calls = []
    monkeypatch.setattr(study, "call", lambda *argv: calls.append([str(a) for a in argv]))
    for argv in ([], ["--bf16"]):
        args = parse_args(["--runs_dir", str(tmp_path), *argv])
        study.train(args, "wiki-keywords", "ar", 1)
    assert [c[c.index("--bf16") + 1] for c in calls] == ["false", "true"]
