"""Seq2seq end to end: word_freq.py --task → main.py --task → resume → predict_downstream."""

import json

import pytest
import torch

from conditional_data import toy
from evaluation import text_metrics
from models import DiffusionConfig, build_model, load_checkpoint, save_checkpoint
from tests.test_cli import losses, run, run_main


def seq2seq_args(tiny_bert, freq, out, steps, *extra):
    return [
        "main.py", "--task", "toy", "--model_name_or_path", str(tiny_bert), "--from_scratch",
        "true", "--word_freq_file", str(freq), "--batch_size", "8", "--max_length", "40",
        "--max_target_length", "16", "--dev_size", "16", "--num_steps", "100", "--lr", "2e-3",
        "--warmup_steps", "5", "--logging_steps", "1", "--eval_steps", "4",
        "--fitlog_dir", str(out / "logs"), "--output_dir", str(out), "--max_steps", str(steps),
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def seq2seq_freq(tiny_bert, tmp_path_factory):
    path = tmp_path_factory.mktemp("freq") / "toy_seq2seq.pt"
    run("word_freq.py", "--model_name_or_path", str(tiny_bert), "--task", "toy",
        "--output", str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def seq2seq_run(tiny_bert, seq2seq_freq, tmp_path_factory):
    out = tmp_path_factory.mktemp("seq2seq")
    run(*seq2seq_args(tiny_bert, seq2seq_freq, out, 8))
    return out


def test_word_freq_counts_targets_and_their_end(tokenizer, seq2seq_freq):
    counts = torch.load(seq2seq_freq, weights_only=True)
    pairs = toy.pairs("train")
    assert counts[tokenizer.sep_token_id] == len(pairs["trg"])
    was = tokenizer.convert_tokens_to_ids("was")
    assert counts[was] == sum(t.split().count("was") for t in pairs["trg"])
    quote = tokenizer.convert_tokens_to_ids('"')
    assert counts[quote] == 0  # the prompt is source, never target


def test_seq2seq_checkpoint_and_exact_resume(tiny_bert, seq2seq_freq, seq2seq_run, tmp_path):
    ckpt = load_checkpoint(seq2seq_run / "last")
    assert (ckpt.config.task, ckpt.config.max_target_length) == ("toy", 16)
    full = losses(seq2seq_run)
    run(*seq2seq_args(tiny_bert, seq2seq_freq, tmp_path, 4))
    run(*seq2seq_args(tiny_bert, seq2seq_freq, tmp_path, 8, "--resume_from",
                      str(tmp_path / "last")))  # fmt: skip
    resumed = losses(tmp_path)
    assert sorted(resumed) == list(range(1, 9))
    for step in range(5, 9):
        assert resumed[step] == pytest.approx(full[step], rel=1e-6), (step, full, resumed)


def test_predict_downstream_writes_mbr_candidates_and_metrics(seq2seq_run, tmp_path):
    import predict_downstream_condition as script

    common = ["--checkpoint", str(seq2seq_run / "best"), "--max_examples", "5", "--mbr_size",
              "3", "--batch_size", "4", "--num_steps", "12", "--seed", "1"]  # fmt: skip
    script.main([*common, "--output_dir", str(tmp_path / "a")])
    script.main([*common, "--cfg_weight", "0", "--output_dir", str(tmp_path / "b")])
    script.main([*common, "--cfg_weight", "2", "--output_dir", str(tmp_path / "c")])
    a = tmp_path / "a"
    lines = (a / "toy_mbr.txt").read_text().splitlines()
    records = [json.loads(r) for r in (a / "toy_candidates.jsonl").read_text().splitlines()]
    test = toy.pairs("test")
    assert len(lines) == len(records) == 5
    for line, record, src, trg in zip(lines, records, test["src"], test["trg"], strict=False):
        assert (record["source"], record["reference"]) == (src, trg)
        assert len(record["candidates"]) == 3
        tokens = [text_metrics.tokenize(c) for c in record["candidates"]]
        assert record["mbr_index"] == text_metrics.mbr_select(tokens)
        assert line == record["candidates"][record["mbr_index"]]
    scores = json.loads((a / "toy_metrics.json").read_text())
    sets = [r["candidates"] for r in records]
    expected = text_metrics.conditional_scores(lines, test["trg"][:5], sets)
    for key in ("bleu", "rouge_l", "self_bleu", "dist_1", "div_4"):
        assert scores[key] == pytest.approx(expected[key])
    copy = text_metrics.conditional_scores(test["src"][:5], test["trg"][:5])["bleu"]
    assert scores["copy_source_bleu"] == pytest.approx(copy)
    assert (tmp_path / "b" / "toy_mbr.txt").read_text() == "\n".join(lines) + "\n"
    guided = json.loads((tmp_path / "c" / "toy_metrics.json").read_text())
    assert guided["cfg_weight"] == 2 and guided["num_sources"] == 5
    assert scores["precision"] == "fp32"


def test_predict_downstream_in_bf16_says_so(seq2seq_run, tmp_path, monkeypatch):
    """With native bf16 (made so here) --bf16 guides and samples under bf16 autocast, and
    the metrics file says bf16."""
    import predict_downstream_condition as script
    from common import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    script.main(["--checkpoint", str(seq2seq_run / "best"), "--max_examples", "2", "--mbr_size",
                 "2", "--num_steps", "8", "--cfg_weight", "1", "--bf16",
                 "--output_dir", str(tmp_path)])  # fmt: skip
    metrics = json.loads((tmp_path / "toy_metrics.json").read_text())
    assert metrics["precision"] == "bf16" and metrics["num_sources"] == 2
    assert len((tmp_path / "toy_mbr.txt").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "paws"], "--task 'paws' is unknown"),
        (["--mbr_size", "0"], "--mbr_size must be ≥ 1"),
        (["--cfg_weight", "-1"], "--cfg_weight must be ≥ 0"),
        (["--split", "dev2"], "--split 'dev2' is unknown"),
        (["--task", "qqp"], "--task qqp needs --data_dir"),
        (["--topk", "-2"], "--topk must be"),
    ],
)
def test_bad_seq2seq_sampling_input_is_one_clear_line(seq2seq_run, tmp_path, extra, message,
                                                      capsys):  # fmt: skip
    code, _, err = run_main("predict_downstream_condition.py", "--checkpoint",
                            str(seq2seq_run / "best"), "--output_dir", str(tmp_path), *extra,
                            capsys=capsys)  # fmt: skip
    assert code == 2 and "Traceback" not in err, err
    last = err.splitlines()[-1]  # a "note:" line may come first (prompting another task)
    assert last.startswith("error: ") and message in last, err


def test_checkpoint_kinds_are_not_mixed_up(seq2seq_run, tiny_bert, tokenizer, tmp_path, capsys):
    config = DiffusionConfig(num_steps=10, max_length=16)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True)
    save_checkpoint(tmp_path / "plain", model, tokenizer, config, None)
    code, _, err = run_main("predict_downstream_condition.py", "--checkpoint",
                            str(tmp_path / "plain"), "--output_dir", str(tmp_path),
                            capsys=capsys)  # fmt: skip
    assert code == 2 and "was trained unconditionally" in err, err
    for script_name in ("predict.py", "compute_elbo.py"):
        code, _, err = run_main(script_name, "--checkpoint", str(seq2seq_run / "best"),
                                capsys=capsys)  # fmt: skip
        assert code == 2 and "is a seq2seq model" in err, err


def _qqp_folder(tmp_path, bad_line=None):
    folder = tmp_path / "QQP"
    folder.mkdir()
    lines = [json.dumps({"src": f"how do i learn {w}?", "trg": f"what is {w}?"})
             for w in ("python", "rust", "go", "c", "java")]  # fmt: skip
    if bad_line:
        lines[2] = bad_line
    for split in ("train", "valid", "test"):
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "paws"], "--task 'paws' is unknown"),
        (["--task", "qqp"], "--task qqp needs --data_dir"),
        (["--task", "qqp", "--data_dir", "BAD"], "train.jsonl:3: not valid JSON"),
        (["--max_target_length", "1"], "--max_target_length must be ≥ 2"),
        (["--max_length", "20"], "--max_length 20 leaves no room for the source"),
    ],
)
def test_bad_seq2seq_training_input_is_one_clear_line(tiny_bert, seq2seq_freq, tmp_path, extra,
                                                      message, capsys, monkeypatch):  # fmt: skip
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if "BAD" in extra:
        extra = [str(_qqp_folder(tmp_path, '{"src": "x", "trg"')) if e == "BAD" else e
                 for e in extra]  # fmt: skip
    args = seq2seq_args(tiny_bert, seq2seq_freq, tmp_path / "out", 2)
    code, _, err = run_main(*args, *extra, capsys=capsys)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert err.count("\n") == 1


def test_diffuseq_folder_trains(tiny_bert, seq2seq_freq, tmp_path):
    folder = _qqp_folder(tmp_path)
    out = tmp_path / "qqp"
    args = seq2seq_args(tiny_bert, seq2seq_freq, out, 2)
    args[args.index("toy")] = "qqp"
    args[args.index("--batch_size") + 1] = "2"
    run(*args, "--data_dir", str(folder), "--word_freq_lambda", "0")
    assert load_checkpoint(out / "last").config.task == "qqp"
