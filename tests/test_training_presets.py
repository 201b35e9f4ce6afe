"""The shipped runs, declared once (training/presets.py): each parses as main.py's flags, and
the shell scripts and the GPU check read them instead of repeating them."""

from pathlib import Path

import pytest

import main
from tools import gpu_check
from training.presets import PRESETS, preset

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_main_py_command(name):
    argv = preset(name)
    if "--max_target_length" in argv and "--task" not in argv:  # the script names the task
        argv = [*argv, "--task", "toy"]
    args = main.parse_args(argv)
    assert args.max_length >= 32 and args.objective == "d3pm"
    main.refuse_ignored_flags(args, argv)  # no flag its other settings ignore


def test_the_scripts_read_the_presets():
    run = (REPO / "run.sh").read_text()
    condition = (REPO / "run_condition.sh").read_text()
    for name, script in (("demo", run), ("lm1b", run), ("toy-seq2seq", condition),
                         ("wiki-seq2seq", condition), ("diffuseq", condition)):  # fmt: skip
        assert f"python3 -m training.presets {name})" in script
    assert "--word_freq_lambda" not in run and "--hybrid_lambda" not in condition
    assert gpu_check.DEMO_ARGS[: len(preset("demo"))] == preset("demo")


def test_every_training_field_is_a_declared_setting_with_its_default():
    """TrainingConfig holds no setting of its own: each field is a main.py flag declared in
    training.settings, with the declared default (one source per setting)."""
    from dataclasses import fields

    from training.config import TrainingConfig
    from training.settings import BY_NAME

    defaults = TrainingConfig()
    for f in fields(TrainingConfig):
        assert f.name in BY_NAME, f.name
        assert getattr(defaults, f.name) == BY_NAME[f.name].default, f.name
    parsed = __import__("main").build_parser().parse_args([])
    assert TrainingConfig.from_namespace(parsed) == defaults
