"""Readers of the project's own files: the ablation's results and run folders. A damaged or
unexpected one is one line naming it (or is repaired when nothing is lost), a sub-script's
failure is one line, and Ctrl-C stops the grid with one line."""

import json

import pytest

from common.errors import UsageError
from experiments.ablation import run as ablation
from experiments.ablation.calls import Stopped
from tests import test_models_folder_checks

# module-scoped fixtures shared with those tests
saved = test_models_folder_checks.saved


def grid_argv(tmp_path, *extra):
    return ["--output", str(tmp_path / "out"), "--runs_dir", str(tmp_path / "runs"), *extra]


def exit_message(argv, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        ablation.main(argv)
    message = capsys.readouterr().err
    assert info.value.code == 2 and message.startswith("error: ") and message.count("\n") == 1
    return message


@pytest.mark.parametrize("seeds", ["1,,2", "1,a", "-1", "1,1", ""])
def test_bad_seeds_are_one_line(tmp_path, seeds, capsys):
    message = exit_message(grid_argv(tmp_path, "--seeds", seeds), capsys)
    assert "--seeds" in message and "distinct integers" in message
    assert not (tmp_path / "out").exists()


def test_seeds_with_spaces_are_normalised():
    assert ablation.parse_args(["--seeds", " 3, 1 "]).seeds == "3,1"


@pytest.mark.parametrize("line", ['{"seed": 1}', '{"row": "x"}', '{"row": "x", "seed": "1"}', "[]"])
def test_a_results_line_without_row_or_seed_is_one_line(tmp_path, line, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.jsonl").write_text('{"row": "a", "seed": 1}\n' + line + "\n")
    message = exit_message(grid_argv(tmp_path), capsys)
    assert "results.jsonl:2" in message and "'row'" in message
    assert not (tmp_path / "runs").exists()


def test_a_sub_script_failure_is_one_line(tmp_path):
    """The scripts run as subprocesses: a crash, a one-line error and a Ctrl-C of a script
    are one UsageError naming the command, the same, and ``Stopped``."""
    broken = tmp_path / "broken.py"
    for body, expected in (("raise IndexError('list index out of range')", UsageError),
                           ("import sys; sys.exit(2)", UsageError),
                           ("import sys; sys.exit(130)", Stopped)):  # fmt: skip
        broken.write_text(body + "\n")
        with pytest.raises(expected) as info:
            ablation.call(broken, "--flag", 1)
        if expected is UsageError:
            assert "broken.py --flag 1 exited with status" in str(info.value)
    broken.write_text("print('fine')\n")
    ablation.call(broken)


def test_ctrl_c_during_the_grid_is_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(script, *argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(ablation, "call", interrupted)
    with pytest.raises(SystemExit) as info:
        ablation.main(grid_argv(tmp_path))
    err = capsys.readouterr().err
    assert info.value.code == 130 and err.count("\n") == 1 and "run the same command" in err


def test_a_run_folder_holding_only_a_log_is_cleared_to_start_again(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_log.jsonl").write_text('{"step": 1}\n')
    (run / "notes.txt").write_text("mine")
    ablation.check_run_folder(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    assert "starts again" in capsys.readouterr().out


def test_torn_derived_results_are_computed_again(saved, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "elbo_discrete16.json").write_text('{"given_length": ')
    (run / "elbo_continuous.json").write_text(json.dumps({"given_length": {}}))
    (run / "metrics.json").write_text("")
    ablation.check_run_folder(run)
    assert sorted(p.name for p in run.iterdir()) == ["elbo_continuous.json"]


def test_a_torn_training_state_is_one_line_naming_it(saved, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(saved, run / "last")
    state = run / "last" / "training_state.pt"
    state.write_bytes(state.read_bytes()[:300])
    with pytest.raises(UsageError) as info:
        ablation.check_run_folder(run)
    message = str(info.value)
    assert str(state) in message and f"delete {run}" in message and "\n" not in message


def test_a_kill_between_the_renames_of_a_save_resumes_from_the_old_copy(saved, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(saved, run / ".last.old")
    (run / "train_log.jsonl").write_text('{"step": 1}\n')
    ablation.check_run_folder(run)
    assert (run / "last" / "training_state.pt").is_file()
    assert (run / "train_log.jsonl").is_file()
