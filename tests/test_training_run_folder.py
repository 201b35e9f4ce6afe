"""A run folder belongs to one run; nothing of an earlier run is lost or mixed, and a
resume changes nothing silently. Runs are main(argv) in this process (tiny BERT, few steps)."""

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from models.checkpoint import TRAINING_STATE
from tests.test_cli import run_main, train_args
from training import run_dir
from training.run_dir import lock, prune_checkpoints


@pytest.fixture(scope="module")
def counts(tiny_bert, toy_txt, tmp_path_factory):
    """Token counts of the toy file (as word_freq.py writes them)."""
    path = tmp_path_factory.mktemp("freq") / "counts.pt"
    module = __import__("word_freq")
    module.main(["--model_name_or_path", str(tiny_bert), "--dataset", str(toy_txt),
                 "--output", str(path)])  # fmt: skip
    return path


def args(tiny_bert, toy_txt, counts, out, steps, *extra):
    return [*train_args(tiny_bert, toy_txt, counts, out, steps), "--fitlog_dir", "", *extra]


def train(capsys, *argv):
    code, _, err = run_main(*argv, capsys=capsys)
    return code, err


@pytest.fixture(scope="module")
def finished(tiny_bert, toy_txt, counts, tmp_path_factory):
    """A 3-step run (dev evaluation at step 3) with --keep_last 1, to copy."""
    out = tmp_path_factory.mktemp("run")
    module = __import__("main")
    module.main(args(tiny_bert, toy_txt, counts, out, 3, "--eval_steps", "3", "--save_steps",
                     "1", "--keep_last", "1")[1:])  # fmt: skip
    return out


@pytest.fixture
def earlier(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def snapshot(out):
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_the_run_recorded_its_step_copies(finished):
    assert run_dir.owned_checkpoints(finished) == [3]
    assert sorted(p.name for p in finished.glob("checkpoint-*")) == ["checkpoint-3"]


def test_the_step_copy_of_the_last_save_is_not_a_second_copy_on_disk(finished):
    """checkpoint-3 holds last/'s files as hard links (the weights and the training state are
    on disk once); its model card names its own folder."""
    copy, last = finished / "checkpoint-3", finished / "last"
    for name in ("model.safetensors", TRAINING_STATE, "config.json"):
        assert (copy / name).stat().st_ino == (last / name).stat().st_ino, name
    assert "--checkpoint checkpoint-3" in (copy / "README.md").read_text()
    assert "--checkpoint last" in (last / "README.md").read_text()


def test_a_new_run_on_a_folder_with_a_run_is_refused_and_changes_nothing(
    tiny_bert, toy_txt, counts, earlier, capsys
):
    before = snapshot(earlier)
    code, err = train(capsys, *args(tiny_bert, toy_txt, counts, earlier, 2))
    assert code == 2 and "already holds a run" in err and "--resume_from" in err
    assert "--overwrite" in err and err.count("\n") == 1
    assert snapshot(earlier) == before


def test_overwrite_replaces_the_earlier_run_without_mixing(
    tiny_bert, toy_txt, counts, earlier, capsys
):
    (earlier / "checkpoint-1").mkdir()
    (earlier / "checkpoint-1" / "NOTES.txt").write_text("mine")
    code, err = train(capsys, *args(tiny_bert, toy_txt, counts, earlier, 2, "--eval_steps", "2",
                                    "--overwrite", "true"))  # fmt: skip
    assert code == 0, err[-2000:]
    steps = [json.loads(line)["step"] for line in (earlier / "train_log.jsonl").read_text()
             .splitlines()]  # fmt: skip
    assert steps == [1, 2, 2], "the earlier run's log records must be gone"
    assert not (earlier / "checkpoint-3").exists(), "the earlier run's step copy is replaced"
    assert (earlier / "checkpoint-1" / "NOTES.txt").read_text() == "mine"


def test_resuming_another_runs_checkpoint_into_a_folder_with_a_run_is_refused(
    tiny_bert, toy_txt, counts, earlier, finished, capsys
):
    before = snapshot(earlier)
    argv = args(tiny_bert, toy_txt, counts, earlier, 4, "--resume_from", str(finished / "last"))
    code, err = train(capsys, *argv)
    assert code == 2 and "already holds a run" in err, err[-2000:]
    assert snapshot(earlier) == before


def test_a_second_run_on_a_locked_folder_stops_at_once(tiny_bert, toy_txt, counts, tmp_path,
                                                       capsys):  # fmt: skip
    out = tmp_path / "run"
    out.mkdir()
    with lock(out):
        code, err = train(capsys, *args(tiny_bert, toy_txt, counts, out, 2))
        assert code == 2 and "in use by another run" in err and err.count("\n") == 1
    assert not (out / "train_log.jsonl").exists()


def test_the_lock_of_a_killed_run_is_free(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a');"
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
         str(out / ".lock")], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(ValueError, match="in use by another run"):
        lock(out)
    holder.kill()
    holder.wait()
    lock(out).release()


def test_stale_temporary_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".last.tmp-{dead.pid}").mkdir()
    (tmp_path / f".last.tmp-{dead.pid}" / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / f".train_log.jsonl.tmp-{dead.pid}").write_text("{}")
    (tmp_path / f".best.tmp-{os.getppid()}").mkdir()  # a live process: kept
    with run_dir.claim(tmp_path, None, overwrite=False):
        names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f".best.tmp-{os.getppid()}", ".lock"]


def test_pruning_deletes_only_the_copies_this_run_wrote(tmp_path):
    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "checkpoint-1" / "NOTES.txt").write_text("keep me")
    (tmp_path / "checkpoint-500").mkdir()  # a stray copy with a larger step
    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
        run_dir.record_checkpoint(tmp_path, step)
        prune_checkpoints(tmp_path, 2)
    names = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert names == ["checkpoint-1", "checkpoint-4", "checkpoint-500", "checkpoint-6"]
    assert run_dir.owned_checkpoints(tmp_path) == [4, 6]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lr", "1e-3"], "--lr was 0.002, now 0.001"),
        (["--weight_decay", "0.1"], "--weight_decay was 0.0, now 0.1"),
        (["--max_grad_norm", "1"], "--max_grad_norm was 0.0, now 1.0"),
    ],
)
def test_resume_with_a_changed_optimizer_setting_is_refused(tiny_bert, toy_txt, counts, earlier,
                                                            extra, message, capsys):  # fmt: skip
    before = snapshot(earlier)
    argv = args(tiny_bert, toy_txt, counts, earlier, 4, "--resume_from", str(earlier / "last"))
    code, err = train(capsys, *argv, *extra)
    assert code == 2 and message in err, err[-2000:]
    assert snapshot(earlier) == before


def test_resume_with_other_token_counts_is_refused(tiny_bert, toy_txt, counts, earlier, tmp_path,
                                                   capsys):  # fmt: skip
    other = tmp_path / "other.pt"
    changed = torch.load(counts, weights_only=True).clone()
    changed[1000] += 1
    torch.save(changed, other)
    argv = args(tiny_bert, toy_txt, other, earlier, 4, "--resume_from", str(earlier / "last"))
    code, err = train(capsys, *argv)
    assert code == 2 and "--word_freq_file" in err and "differ" in err, err[-2000:]


def test_resume_after_a_torn_log_line_and_with_counts_at_another_path(
    tiny_bert, toy_txt, counts, earlier, tmp_path, capsys
):
    moved = tmp_path / "moved.pt"
    shutil.copy(counts, moved)
    log = earlier / "train_log.jsonl"
    log.write_text(log.read_text() + '{"step": 4, "lo')
    argv = args(tiny_bert, toy_txt, moved, earlier, 4, "--resume_from", str(earlier / "last"))
    code, err = train(capsys, *argv)
    assert code == 0, err[-2000:]
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps[-1] == 4 and steps.count(4) >= 1


def test_an_optimizer_state_that_does_not_fit_names_the_file(tiny_bert, toy_txt, counts, earlier,
                                                             capsys):  # fmt: skip
    file = earlier / "last" / TRAINING_STATE
    state = torch.load(file, weights_only=True)
    first = state["optimizer"]["state"][0]
    first["exp_avg"] = torch.zeros(3)
    torch.save(state, file)
    argv = args(tiny_bert, toy_txt, counts, earlier, 4, "--resume_from", str(earlier / "last"))
    code, err = train(capsys, *argv)
    assert code == 2 and str(file) in err and "does not fit the model" in err, err[-2000:]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lr", "inf"], "--lr must be a finite number in (0, 1]"),
        (["--lr", "nan"], "--lr must be"),
        (["--seed", "5000000000"], "--seed must be a finite number in [0, 2**32)"),
        (["--seed", "-1"], "--seed must be"),
        (["--word_freq_lambda", "nan"], "--word_freq_lambda must be"),
        (["--max_grad_norm", "inf"], "--max_grad_norm must be"),
        (["--warmup_steps", "-5"], "--warmup_steps must be"),
        (["--keep_last", "-1"], "--keep_last must be"),
        (["--save_steps", "0"], "--save_steps must be"),
        (["--max_steps", "0"], "--max_steps must be"),
        (["--batch_size", "100000000"], "--batch_size must be"),
        (["--dev_size", "inf"], "--dev_size must be"),
    ],
)
def test_bad_numbers_are_refused_before_any_work(tiny_bert, toy_txt, counts, tmp_path, extra,
                                                 message, capsys):  # fmt: skip
    out = tmp_path / "run"
    code, err = train(capsys, *args(tiny_bert, toy_txt, counts, out, 2), *extra)
    assert code == 2 and message in err, err[-2000:]
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (out / "train_log.jsonl").exists()


def test_a_fitlog_dir_under_a_file_is_refused_before_any_work(tiny_bert, toy_txt, counts, tmp_path,
                                                              capsys):  # fmt: skip
    (tmp_path / "afile").write_text("")
    argv = args(tiny_bert, toy_txt, counts, tmp_path / "run", 2, "--fitlog_dir",
                str(tmp_path / "afile" / "logs"))  # fmt: skip
    code, err = train(capsys, *argv)
    assert code == 2 and "--fitlog_dir" in err and "is a file" in err


def test_nan_weights_fail_the_run(monkeypatch):
    from training.stopping import check_finite_weights

    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN/inf after training"):
        check_finite_weights(model, "out")


def test_a_full_disk_while_logging_is_one_line(tiny_bert, toy_txt, counts, tmp_path, capsys,
                                               monkeypatch):  # fmt: skip
    from training.loggers import JsonlLog

    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(JsonlLog, "write", full)
    out = tmp_path / "run"
    code, err = train(capsys, *args(tiny_bert, toy_txt, counts, out, 2))
    assert code == 2 and "train_log.jsonl" in err and "disk is full" in err, err[-2000:]
    assert "Traceback" not in err and err.count("error:") == 1


def test_a_full_disk_while_saving_leaves_no_partial_folder(tiny_bert, toy_txt, counts, tmp_path,
                                                           capsys, monkeypatch):  # fmt: skip
    import models.checkpoint

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")  # fmt: skip

    monkeypatch.setattr(models.checkpoint.torch, "save", full)
    out = tmp_path / "run"
    code, err = train(capsys, *args(tiny_bert, toy_txt, counts, out, 2, "--save_steps", "1"))
    assert code == 2 and f"cannot write {out / 'last'}" in err, err[-2000:]
    assert "Traceback" not in err and err.count("error:") == 1
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_a_resume_inside_the_warm_up_is_bit_identical(tiny_bert, toy_txt, counts, tmp_path,
                                                      capsys):  # fmt: skip
    """Resumed from step 1 of a 5-step warm-up (a fresh AdamW step counter, the LR schedule
    mid-warm-up): the weights, AdamW moments and step counters of every later step equal the
    uninterrupted run's bit for bit."""
    from safetensors.torch import load_file

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ("--save_steps", "1", "--keep_last", "10", "--eval_steps", "2")
    code, err = train(capsys, *args(tiny_bert, toy_txt, counts, straight, 4, *common))
    assert code == 0, err[-2000:]
    code, err = train(capsys, *args(tiny_bert, toy_txt, counts, resumed, 4, *common,
                                    "--resume_from", str(straight / "checkpoint-1")))  # fmt: skip
    assert code == 0, err[-2000:]
    for step in (2, 3, 4):
        a, b = straight / f"checkpoint-{step}", resumed / f"checkpoint-{step}"
        wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
        assert all(torch.equal(wa[k], wb[k]) for k in wa), step
        sa = torch.load(a / TRAINING_STATE, weights_only=True)
        sb = torch.load(b / TRAINING_STATE, weights_only=True)
        for i, entry in sa["optimizer"]["state"].items():
            for key, value in entry.items():
                other = sb["optimizer"]["state"][i][key]
                assert value.dtype == other.dtype and torch.equal(value, other), (step, key)
        assert sa["scheduler"] == sb["scheduler"]
        assert sa["rng"][0]["torch"] == sb["rng"][0]["torch"]
