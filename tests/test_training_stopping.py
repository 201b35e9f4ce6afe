"""Stopping: a Ctrl-C at any point of a script's start-up is one line and status 130 (no
traceback, nothing half-written, the run folder free again), and every advice names a flag the
script has."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import training.assemble
from common.errors import INTERRUPTED
from models import DiffusionConfig, build_model, save_checkpoint
from tests import test_training_run_folder
from tests.test_cli import run_main
from training.run_dir import lock

# module-scoped fixtures shared with those tests
args = test_training_run_folder.args
counts = test_training_run_folder.counts

REPO = Path(__file__).resolve().parents[1]


def interrupt(*_, **__):
    raise KeyboardInterrupt


def test_ctrl_c_while_main_loads_its_data_is_one_line_and_frees_the_folder(
    tiny_bert,
    toy_txt,
    counts,
    tmp_path,
    capsys,
    monkeypatch,
):
    monkeypatch.setattr(training.assemble, "training_data", interrupt)
    out = tmp_path / "run"
    code, _, err = run_main(*args(tiny_bert, toy_txt, counts, out, 2), capsys=capsys)
    assert code == 130 and err.strip() == INTERRUPTED
    lock(out).release()  # the run's lock was released
    assert not (out / "last").exists() and not (out / "train_log.jsonl").exists()


def test_ctrl_c_while_a_script_imports_is_one_line():
    done = subprocess.run(
        [sys.executable, "-c", "import common.interrupt\nimport time\nraise KeyboardInterrupt"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stderr.strip() == INTERRUPTED
    assert done.returncode in (130, -2)


@pytest.mark.parametrize("script", ["main.py", "predict.py", "word_freq.py",
                                    "predict_downstream_condition.py"])  # fmt: skip
def test_every_script_installs_the_hook_before_its_heavy_imports(script):
    lines = (REPO / script).read_text().splitlines()
    hook = lines.index(next(line for line in lines if line.startswith("import common.interrupt")))
    heavy = [n for n, line in enumerate(lines) if line.startswith(("import torch", "from transf"))]
    assert all(hook < n for n in heavy)


def test_ctrl_c_while_word_freq_counts_leaves_no_file(tiny_bert, toy_txt, tmp_path, capsys,
                                                      monkeypatch):  # fmt: skip
    import word_freq

    monkeypatch.setattr(word_freq, "count_ids", interrupt)
    output = tmp_path / "counts.pt"
    code, _, err = run_main("word_freq.py", "--model_name_or_path", str(tiny_bert), "--dataset",
                            str(toy_txt), "--cache_dir", str(tmp_path / "cache"), "--output",
                            str(output), capsys=capsys)  # fmt: skip
    assert code == 130 and err.strip() == INTERRUPTED
    assert not output.exists() and not list(tmp_path.glob(".counts.pt.tmp-*"))


def test_the_seq2seq_script_advises_a_flag_it_has(tiny_bert, tokenizer, tmp_path, capsys):
    config = DiffusionConfig(num_steps=10, word_freq_lambda=0.0, max_length=16, task="toy",
                             max_target_length=8)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True)
    save_checkpoint(tmp_path / "best", model, tokenizer, config, None)
    argv = ["--checkpoint", str(tmp_path / "best"), "--max_target_length", "15", "--device",
            "cpu", "--output_dir", str(tmp_path / "gen")]  # fmt: skip
    code, _, err = run_main("predict_downstream_condition.py", *argv, capsys=capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "--max_target_length 15" in err and "pass --max_target_length ≤" in err
    assert "--max_length" not in err
