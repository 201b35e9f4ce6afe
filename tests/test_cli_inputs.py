"""Bad numbers, bad files and failed writes are one ``error:`` line that names the
flag or file, with exit status 2, before the work; a failed write leaves the old file."""

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.errors import UsageError
from common.files import WriteError, atomic_directory, write_json, write_text
from corpora import load_texts
from corpora.counting import load_counts
from tests.test_cli import REPO, run_main


def one_line(code, err, *needles):
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num_steps", "0"], "--num_steps must be a finite number in [1,"),
        (["--temperature", "inf"], "--temperature must be a finite number"),
        (["--temperature", "nan"], "--temperature must be"),
        (["--topp", "nan"], "--topp must be"),
        (["--seed", str(2**63)], "--seed must be a finite number in [0, 2**63)"),
        (["--seed", "-3"], "--seed must be"),
        (["--num_samples", str(10**12)], "--num_samples must be"),
        (["--batch_size", str(10**9)], "--batch_size must be"),
        (["--length", str(10**9)], "--length must be"),
    ],
)
def test_predict_numbers_are_checked_before_the_checkpoint(tmp_path, extra, message, capsys):
    # the checkpoint does not exist: the flag must be refused before it is looked for
    code, _, err = run_main("predict.py", "--checkpoint", str(tmp_path / "none"), "--output",
                            str(tmp_path / "s.txt"), *extra, capsys=capsys)  # fmt: skip
    one_line(code, err, message)


def test_predict_output_under_a_file_is_refused_before_the_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    code, _, err = run_main("predict.py", "--checkpoint", str(tmp_path / "none"), "--output",
                            str(tmp_path / "afile" / "s.txt"), capsys=capsys)  # fmt: skip
    one_line(code, err, "--output", "afile is a file")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mbr_size", "1000000000"], "--mbr_size must be a finite number in [1, 1024]"),
        (["--cfg_weight", "inf"], "--cfg_weight must be"),
        (["--cfg_weight", "nan"], "--cfg_weight must be"),
        (["--num_steps", "0"], "--num_steps must be"),
        (["--seed", str(2**64)], "--seed must be"),
    ],
)
def test_seq2seq_numbers_are_checked_before_the_checkpoint(tmp_path, extra, message, capsys):
    code, _, err = run_main("predict_downstream_condition.py", "--checkpoint",
                            str(tmp_path / "none"), *extra, capsys=capsys)  # fmt: skip
    one_line(code, err, message)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mc_samples", str(10**9)], "--mc_samples must be"),
        (["--seed", str(2**63)], "--seed must be"),
        (["--eval_step_size", "0"], "--eval_step_size must be"),
    ],
)
def test_elbo_numbers_are_checked_before_the_checkpoint(tmp_path, extra, message, capsys):
    code, _, err = run_main("compute_elbo.py", "--checkpoint", str(tmp_path / "none"), *extra,
                            capsys=capsys)  # fmt: skip
    one_line(code, err, message)


def test_elbo_json_under_a_file_is_refused_before_the_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    code, _, err = run_main("compute_elbo.py", "--checkpoint", str(tmp_path / "none"), "--json",
                            str(tmp_path / "afile" / "x.json"), capsys=capsys)  # fmt: skip
    one_line(code, err, "--json")


def metric(tmp_path, capsys, generated: bytes, *extra, references: bytes | None = None):
    gen = tmp_path / "gen.txt"
    gen.write_bytes(generated)
    argv = ["--generated", str(gen), *extra]
    if references is not None:
        (tmp_path / "ref.txt").write_bytes(references)
        argv += ["--references", str(tmp_path / "ref.txt")]
    return run_main("compute_metric.py", *argv, capsys=capsys)


@pytest.mark.parametrize("text", [b"", b"\n  \n\t\n"])
def test_metrics_of_an_empty_generated_file_are_refused(tmp_path, capsys, text):
    code, _, err = metric(tmp_path, capsys, text)
    one_line(code, err, "--generated", "has no text")


def test_undecodable_generated_file_names_file_and_line(tmp_path, capsys):
    code, _, err = metric(tmp_path, capsys, b"fine\nbad \xff byte\n")
    one_line(code, err, f"--generated {tmp_path / 'gen.txt'}:2: not UTF-8")


@pytest.mark.parametrize(
    ("candidates", "message"),
    [
        ('{"candidates": ["a b"]}\n', "has 1 lines but --generated 2"),
        (
            '{"candidates": ["a b"]}\n{"candidates": []}\n',
            "cand.jsonl:2: the candidate list is empty",
        ),
        ('{"candidates": ["a b"]}\n{"candidates": "a b"}\n', "cand.jsonl:2: expected"),
    ],
)
def test_bad_candidate_files_are_refused(tmp_path, capsys, candidates, message):
    (tmp_path / "cand.jsonl").write_text(candidates)
    code, _, err = metric(tmp_path, capsys, b"a b\nc d\n", "--mode", "conditional",
                          "--candidates", str(tmp_path / "cand.jsonl"),
                          references=b"a b\nc e\n")  # fmt: skip
    one_line(code, err, message)


def test_undecodable_datasets_name_file_and_line(tmp_path):
    txt, jsonl = tmp_path / "d.txt", tmp_path / "d.jsonl"
    txt.write_bytes(b"one\ntwo\nth\xe9ree\n")
    jsonl.write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    with pytest.raises(UsageError, match=r"d\.txt:3: not UTF-8"):
        load_texts(str(txt))
    with pytest.raises(UsageError, match=r"d\.jsonl:2: not UTF-8"):
        load_texts(str(jsonl))


@pytest.mark.parametrize("text", ["", "  \n\n \t \n"])
def test_word_freq_of_an_empty_file_writes_nothing(tiny_bert, tmp_path, capsys, text):
    data, out = tmp_path / "empty.txt", tmp_path / "counts.pt"
    data.write_text(text)
    code, _, err = run_main("word_freq.py", "--model_name_or_path", str(tiny_bert), "--dataset",
                            str(data), "--output", str(out), capsys=capsys)  # fmt: skip
    one_line(code, err, str(data))
    assert not out.exists()


def test_a_text_file_as_word_freq_file_is_one_line(tmp_path):
    file = tmp_path / "counts.txt"
    file.write_text("the 12\nof 7\n")
    with pytest.raises(UsageError) as info:
        load_counts(file, 10)
    message = str(info.value)
    assert str(file) in message and "\n" not in message and "weights_only" not in message


def test_all_zero_word_freq_counts_are_refused(tmp_path):
    file = tmp_path / "zeros.pt"
    torch.save(torch.zeros(10, dtype=torch.int64), file)
    with pytest.raises(UsageError, match="every count is zero"):
        load_counts(file, 10)


def test_a_failed_write_keeps_the_old_file_and_names_the_path(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    write_json(target, {"old": 1})

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(WriteError) as info:
        write_text(target, "new")
    monkeypatch.undo()
    assert str(target) in str(info.value) and "disk is full" in str(info.value)
    assert json.loads(target.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_failed_folder_save_keeps_the_old_folder(tmp_path):
    folder = tmp_path / "last"
    folder.mkdir()
    (folder / "model.safetensors").write_text("old")
    with pytest.raises(WriteError, match="last"), atomic_directory(folder) as tmp:
        (tmp / "model.safetensors").write_text("new")
        raise OSError(errno.EROFS, "Read-only file system")
    assert (folder / "model.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


FILE_SIZE_LIMIT = """
import resource, sys
from common.errors import exit_on_usage_error
from common.files import write_text
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
exit_on_usage_error(lambda: write_text(sys.argv[1], "x" * 100_000))()
"""


def test_a_file_size_limit_is_one_line_not_a_kill(tmp_path):
    target = tmp_path / "big.txt"
    target.write_text("old")
    result = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(target)], cwd=REPO,
                            check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    one_line(result.returncode, result.stderr, str(target), "file-size limit")
    assert target.read_text() == "old"
