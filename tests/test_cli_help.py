"""--help is the reference: every flag of every script has help text and shows its default;
fixed sets are argparse choices read from the registries; booleans share one convention."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

from common.cli import BooleanFlag, Parser

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["main", "word_freq", "predict", "predict_downstream_condition", "compute_elbo",
           "conditional_data.__main__",
           "compute_metric", "evaluation.plots", "evaluation.compare", "evaluation.recipes",
           "evaluation.card",
           "experiments.recipe_coverage", "experiments.ablation.settings",
           "experiments.ablation.table", "experiments.ablation.plots",
           "experiments.variance", "evaluation.compare_outputs", "experiments.ar_twin.settings",
           "experiments.ar_twin.summary", "experiments.seq2seq_wiki.run",
           "experiments.seq2seq_wiki.summary", "training.presets"]  # fmt: skip
BENCH = ["bench.bench", "bench.sample", "bench.data", "bench.padding", "bench.autoregressive",
         "tools.gpu_check", "tools.same_numbers"]  # fmt: skip


def parser_of(name: str) -> argparse.ArgumentParser:
    return importlib.import_module(name).build_parser()


@pytest.mark.parametrize("name", SCRIPTS + BENCH)
def test_every_flag_has_help_and_shows_its_default(name):
    parser = parser_of(name)
    assert isinstance(parser, Parser)
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        flag = action.option_strings[0] if action.option_strings else action.dest
        assert action.help, f"{name}: {flag} has no help text"
        if action.option_strings and not action.required:
            formatter = parser._get_formatter()
            assert "default" in formatter._get_help_string(action), f"{name}: {flag}"
    optional = [
        a
        for a in parser._actions
        if a.option_strings and not a.required and not isinstance(a, argparse._HelpAction)
    ]
    assert "(default:" in text or not optional


def test_registries_are_the_choices():
    from conditional_data import TASKS
    from diffusion import BASE_SCHEDULES, OBJECTIVES, PROTOCOLS, SAMPLERS
    from evaluation.bounds import BOUNDS
    from models import TIMESTEPS
    from training.optim import LR_SCHEDULES

    def choices(script, flag):
        parser = parser_of(script)
        return next(a.choices for a in parser._actions if flag in a.option_strings)

    assert choices("main", "--schedule") == list(BASE_SCHEDULES)
    assert choices("main", "--timestep") == list(TIMESTEPS)
    assert choices("main", "--objective") == [*OBJECTIVES, "ar"]
    assert choices("main", "--lr_schedule") == list(LR_SCHEDULES)
    assert choices("main", "--task") == list(TASKS)
    assert choices("predict", "--sampler") == ["auto", *SAMPLERS]
    assert choices("compute_elbo", "--bound") == list(BOUNDS)
    assert choices("compute_elbo", "--protocol") == list(PROTOCOLS)


@pytest.mark.parametrize(
    ("argv", "value"),
    [([], False), (["--from_scratch"], True), (["--from_scratch", "true"], True),
     (["--from_scratch", "false"], False), (["--no-from_scratch"], False),
     (["--from_scratch", "1"], True)],
)  # fmt: skip
def test_booleans_take_both_spellings(argv, value):
    assert parser_of("main").parse_args(argv).from_scratch is value


def test_every_boolean_uses_the_one_convention():
    for name in SCRIPTS + BENCH:
        for action in parser_of(name)._actions:
            if action.nargs == 0 and not isinstance(action, argparse._HelpAction):
                pytest.fail(f"{name}: {action.option_strings} is a plain switch")
            if action.type is bool:
                pytest.fail(f"{name}: {action.option_strings} uses type=bool")
    show = next(a for a in parser_of("predict")._actions if "--show_process" in a.option_strings)
    assert isinstance(show, BooleanFlag)


def test_bad_values_are_one_line_naming_the_flag(capsys):
    for argv, message in (
        (["--timestep", "clock"], "--timestep 'clock' is unknown: choose one of none"),
        (["--from_scratch", "maybe"], "--from_scratch expected true or false, got 'maybe'"),
        (["--no-bf16", "yes"], "--no-bf16 takes no value"),
        (["--lr", "fast"], "--lr: invalid float value: 'fast'"),
    ):
        with pytest.raises(SystemExit) as stop:
            parser_of("main").parse_args(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and message in err, err
        assert err.startswith("error: ") and err.count("\n") == 1


def test_bars_off_a_terminal_are_plain_lines(monkeypatch):
    import io

    from common import progress

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    progress.set_quiet(False)
    bar = progress.progress(50, "sampling", "step")
    for _ in range(50):
        bar.update(1)
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n") and "50/50" in text
    assert len(text.splitlines()) <= 3  # start, end: not one line per update
    progress.set_quiet(True)
    quiet = progress.progress(5, "x", "step")
    quiet.update(5)
    quiet.close()
    progress.set_quiet(False)
    assert stream.getvalue() == text


@pytest.mark.parametrize("name", ["main", "word_freq", "compute_elbo", "compute_metric"])
def test_dataset_help_names_every_builtin_dataset(name):
    from corpora.loading import BUILTIN

    parser = parser_of(name)
    action = next(a for a in parser._actions if "--dataset" in a.option_strings)
    assert [d for d in BUILTIN if d not in action.help] == []


def test_main_help_says_what_to_run_first():
    text = " ".join(parser_of("main").format_help().split())
    assert "What to run first: word_freq.py" in text and "then main.py" in text
    assert "bash run.sh" in text


def test_no_command_exits_with_an_error_string():
    """``sys.exit("error: ...")`` exits with status 1; every one-line error exits with 2
    (docs/reliability.md), through ``exit_on_usage_error`` or an explicit ``sys.exit(2)``."""
    offenders = []
    for path in REPO.rglob("*.py"):
        if any(part in {"tests", ".git", "outputs"} for part in path.relative_to(REPO).parts):
            continue
        text = path.read_text(encoding="utf-8")
        for marker in ('sys.exit(f"error', 'sys.exit("error', "sys.exit(f'error"):
            if marker in text:
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_every_command_has_a_current_stored_help_text():
    """docs/cli/ holds every entry point's --help exactly as its parser prints it at 100
    columns (rewrite with python3 -m tools.help_texts after changing a flag)."""
    from tools import help_texts

    assert set(SCRIPTS + BENCH) <= set(help_texts.COMMANDS.values())
    assert help_texts.stale() == []


def test_a_stale_stored_text_is_found(tmp_path, monkeypatch):
    from tools import help_texts

    for command in ("main", "evaluation.compare"):
        (tmp_path / f"{command}.txt").write_text(help_texts.help_text(command))
    (tmp_path / "main.txt").write_text("usage: main.py [-h] (an older flag set)\n")
    monkeypatch.setattr(help_texts, "HELP_DIR", tmp_path)
    commands = {"main": "main", "evaluation.compare": "evaluation.compare", "predict": "predict"}
    monkeypatch.setattr(help_texts, "COMMANDS", commands)
    assert help_texts.stale() == ["main", "predict"]  # changed, and missing


@pytest.mark.parametrize("argv", [["main.py"], ["-m", "conditional_data"],
                                  ["-m", "experiments.ablation"]])  # fmt: skip
def test_a_bare_help_prints_the_stored_text_without_loading_torch(argv):
    import subprocess

    from common.stored_help import HELP_DIR

    done = subprocess.run([sys.executable, "-X", "importtime", *argv, "--help"], cwd=REPO,
                          capture_output=True, text=True, check=False)  # fmt: skip
    command = argv[-1].removesuffix(".py")
    assert done.returncode == 0
    assert done.stdout == (HELP_DIR / f"{command}.txt").read_text(encoding="utf-8")
    loaded = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
    assert not loaded & {"torch", "transformers", "datasets", "numpy"}, sorted(loaded)[:20]


def test_help_with_other_flags_is_built_from_the_parser(capsys):
    """Only a bare --help is served from the stored text; any other command line parses."""
    from common import stored_help

    stored_help.print_stored_help(["--help", "--lr", "1"])  # returns: not help alone
    with pytest.raises(SystemExit) as stop:
        parser_of("main").parse_args(["--lr", "1", "--help"])
    assert stop.value.code == 0 and "--lr" in capsys.readouterr().out
