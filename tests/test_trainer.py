"""The training loop's endings: non-finite steps, a signal during a dev evaluation (answered
within one network call, last/ saved), an exception, what every logger hears about each;
the warnings about settings that make a run meaningless; the resume command."""

import dataclasses
import os
import shlex
import signal
import sys

import pytest
import torch

from corpora import load_texts, tokenize_texts
from models import DiffusionConfig, build_model
from training.config import TrainingConfig
from training.loggers import Logger
from training.stopping import StopRequests, resume_command
from training.trainer import MAX_BAD_STEPS, Trainer


def make_trainer(tiny_bert, tokenizer, toy_txt, config=None, **train):
    config = config or DiffusionConfig(num_steps=50, max_length=24)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True)
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    settings = {"lr": 1e-3, "batch_size": 4, "lr_schedule": "constant", "warmup_steps": 0,
                "seed": 0, **train}  # fmt: skip
    return Trainer(
        model=model,
        diffusion=config.diffusion(None, tokenizer.mask_token_id, tokenizer.pad_token_id),
        config=config,
        train=TrainingConfig(**settings),
        tokenizer=tokenizer,
        train_set=data,
        device=torch.device("cpu"),
    ), data


class Ends(Logger):
    def __init__(self):
        self.ends = []

    def end(self, step, outcome, note):
        self.ends.append((outcome, note))


def test_twenty_non_finite_steps_in_a_row_stop_training(tiny_bert, tokenizer, toy_txt):
    trainer, _ = make_trainer(tiny_bert, tokenizer, toy_txt)
    model = trainer.model
    assert trainer.train_step() is not None
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        model.mlm.get_input_embeddings().weight.fill_(float("nan"))
    for _ in range(MAX_BAD_STEPS - 1):
        assert trainer.train_step() is None
    assert trainer.skipped_steps == MAX_BAD_STEPS - 1
    assert all(
        torch.equal(a, b) for a, b in zip(before[1:], list(model.parameters())[1:], strict=True)
    )
    with pytest.raises(FloatingPointError, match="20 steps in a row"):
        trainer.train_step()


def test_a_signal_during_a_dev_evaluation_is_answered_within_one_call(
    tiny_bert, tokenizer, toy_txt, tmp_path
):
    config = DiffusionConfig(num_steps=50, max_length=24, schedule="linear")
    trainer, data = make_trainer(tiny_bert, tokenizer, toy_txt, config, max_steps=4,
                                 eval_steps=2, eval_batch_size=4, eval_step_size=1)  # fmt: skip
    eval_calls = []
    trainer.model.register_forward_hook(
        lambda module, args, out: None if module.training else eval_calls.append(1)
    )
    ends = Ends()
    # 4 dev batches × 50 network calls each; the signal comes after the 10th
    result = trainer.fit(data.select(range(16)), tmp_path, [ends],
                         stop=lambda: signal.SIGINT if len(eval_calls) >= 10 else None)  # fmt: skip
    assert result.signal == signal.SIGINT and result.steps == 2
    assert len(eval_calls) == 10  # no call after the signal
    assert (tmp_path / "last" / "training_state.pt").is_file()
    assert ends.ends == [("stopped", "stopped by Ctrl-C (SIGINT) at step 2; resumable")]


def test_every_ending_reaches_the_loggers(tiny_bert, tokenizer, toy_txt, tmp_path, monkeypatch):
    trainer, data = make_trainer(tiny_bert, tokenizer, toy_txt, max_steps=2, eval_steps=2,
                                 eval_batch_size=8)  # fmt: skip
    ends = Ends()
    result = trainer.fit(data.select(range(8)), tmp_path, [ends])
    assert result.signal is None and ends.ends == [("finished", "finished: 2 steps")]

    def boom():
        raise RuntimeError("boom\nsecond line")

    trainer.train = dataclasses.replace(trainer.train, max_steps=3)
    monkeypatch.setattr(trainer, "train_step", boom)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(data.select(range(8)), tmp_path, [ends])
    assert ends.ends[-1] == ("failed", "failed at step 2: RuntimeError: boom")

    def second_ctrl_c():
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_step", second_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(data.select(range(8)), tmp_path, [ends])
    assert ends.ends[-1] == ("failed", "failed at step 2: quit by a second Ctrl-C, not saved")


def test_warnings_for_settings_that_make_the_run_meaningless(tiny_bert, tokenizer, toy_txt):
    trainer, _ = make_trainer(tiny_bert, tokenizer, toy_txt, lr=5e-5, lr_schedule="invsqrt",
                              warmup_steps=10000, max_steps=40, logging_steps=100)  # fmt: skip
    found = trainer.setting_warnings()
    assert len(found) == 2
    assert "--warmup_steps 10000 is longer than the run (40 steps)" in found[0]
    assert "2.00e-07" in found[0]  # 5e-5 × 40 / 10000
    assert "--logging_steps 100" in found[1]
    fine, _ = make_trainer(tiny_bert, tokenizer, toy_txt, warmup_steps=5, max_steps=40,
                           logging_steps=10)  # fmt: skip
    assert fine.setting_warnings() == []


def test_the_resume_command_repeats_the_run_with_resume_from(tmp_path):
    argv = ["--max_steps", "40", "--overwrite", "--output_dir", "my run", "--resume_from", "x",
            "--overwrite", "false", "--seed=3", "--resume_from=y"]  # fmt: skip
    assert resume_command(argv, tmp_path / "my run" / "last") == (
        f"{shlex.quote(sys.executable)} main.py --max_steps 40 --output_dir 'my run' --seed=3 "
        f"--resume_from "
        f"'{tmp_path}/my run/last'"
    )


def test_ctrl_c_is_answered_at_once_and_twice_quits(capsys):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        stop = StopRequests()
        assert stop() is None
        os.kill(os.getpid(), signal.SIGINT)
        assert stop() == signal.SIGINT
        assert "SIGINT: stopping after this step and saving last/" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
