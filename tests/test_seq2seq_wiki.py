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


def test_a_run_of_another_precision_is_refused_before_any_training(tmp_path, monkeypatch):
    from common.errors import UsageError
    from experiments.seq2seq_wiki import run as study

    calls = []
    monkeypatch.setattr(study, "call", lambda *argv: calls.append(argv))
    best = tmp_path / "wiki-next-diffusion-seed1" / "best"
    best.mkdir(parents=True)
    (best / "training_args.json").write_text(json.dumps({"resolved": {"precision": "bf16"}}))
    args = parse_args(["--runs_dir", str(tmp_path), "--device", "cpu"])
    with pytest.raises(
        UsageError, match=r"trained in bf16, this study trains in fp32; pass --bf16"
    ):
        study.train(args, "wiki-next", "diffusion", 1)
    assert calls == []
    with pytest.raises(UsageError, match=r"--device 'gpu' is not a device"):
        study.train(parse_args(["--runs_dir", str(tmp_path / "x"), "--device", "gpu"]),
                    "wiki-next", "ar", 1)  # fmt: skip
