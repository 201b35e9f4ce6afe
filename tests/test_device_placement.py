"""Tensors created without a device, found on the CPU before a GPU ever sees them.

A factory call (``torch.zeros``, ``torch.arange``, ``torch.rand``, ``torch.tensor``...) or a
``torch.Generator`` made without ``device=`` lands on the CPU: on a CUDA run it fails when it
meets the data ("Expected all tensors to be on the same device"), or silently costs a
host-to-device copy and a sync per call. ``DeviceAudit`` records every such call made from the
project's packages while a training step (d3pm and mdlm), the dev bound, each sampler and the
seq2seq sampler run, and names its file, line and function. The few deliberate host-side
creations (data laid out on the host and moved once) are listed in ``HOST_SIDE`` with their
reason; anything else fails the test. Why this check and not a run with the default device set
to ``meta`` or a static scan: docs/gpu.md.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from corpora import load_texts, tokenize_texts
from evaluation.bounds import estimate_bound
from generation.config import SamplingConfig
from generation.seq2seq import generate_candidates
from generation.unconditional import generate
from models import DiffusionConfig, build_model
from models.checkpoint import Checkpoint
from training.config import TrainingConfig
from training.data import fetch
from training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "corpora", "diffusion", "evaluation", "generation", "models", "training")
TORCH = str(Path(torch.__file__).parent)
FACTORIES = _device_constructors()

# (file, function): why its tensors are meant to be made on the host.
HOST_SIDE = {
    ("training/batches.py", "order"): "the epoch's data order, indexed by Python",
    ("training/batches.py", "batch"): "the order of a group of length-sorted batches, on the host",
    ("corpora/collate.py", "collate"): "a batch laid out on the host, then moved once",
    ("generation/unconditional.py", "generate"): "the generator of the lengths, on the host",
    ("generation/unconditional.py", "_all_masked"): "lengths and layout of a batch, moved once",
    ("diffusion/schedule.py", "_check_monotone"): "a check when the schedule is built",
}


def _caller() -> tuple[str, int, str] | None:
    """(file relative to the repository, line, function) of the innermost frame outside torch
    and this file, when it is in one of the project's packages."""
    frame = sys._getframe(2)
    while frame and frame.f_code.co_filename.startswith((TORCH, __file__)):
        frame = frame.f_back
    if frame is None:
        return None
    path = Path(frame.f_code.co_filename)
    if not path.is_relative_to(REPO) or path.relative_to(REPO).parts[0] not in PACKAGES:
        return None
    return path.relative_to(REPO).as_posix(), frame.f_lineno, frame.f_code.co_name


class DeviceAudit(TorchFunctionMode):
    """Within ``with DeviceAudit() as audit:``, ``audit.sites`` maps (file, function) to
    (line, factory) of each factory call or ``torch.Generator()`` made without a device by the
    project's code (the first in that function)."""

    def __init__(self):
        super().__init__()
        self.sites: dict[tuple[str, str], tuple[int, str]] = {}

    def record(self, name: str) -> None:
        where = _caller()
        if where is not None:
            self.sites.setdefault((where[0], where[2]), (where[1], name))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            self.record(func.__name__)
        return func(*args, **kwargs)

    def __enter__(self):
        audit = self

        class AuditedGenerator(torch.Generator):
            def __new__(cls, device=None):
                if device is None:
                    audit.record("Generator")
                    return super().__new__(cls)
                return super().__new__(cls, device)

        self._generator = torch.Generator
        torch.Generator = AuditedGenerator
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Generator = self._generator
        return super().__exit__(*exc)

    def unexpected(self) -> list[str]:
        """The sites not in ``HOST_SIDE``, as 'file:line function() torch.factory'."""
        return [
            f"{file}:{line} {function}() torch.{name} without device= (pass the data's "
            "device, or list the function in HOST_SIDE with the reason)"
            for (file, function), (line, name) in sorted(self.sites.items())
            if (file, function) not in HOST_SIDE
        ]


@pytest.fixture(scope="module")
def run(tiny_bert, tokenizer, toy_txt):
    """Builders of a trainer and a checkpoint of the tiny BERT on the toy sentences."""
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    counts = torch.randint(1, 1000, (len(tokenizer),), generator=torch.Generator().manual_seed(0))

    def model(config):
        torch.manual_seed(0)
        return build_model(str(tiny_bert), tokenizer, config, from_scratch=True)

    def trainer(objective: str) -> Trainer:
        config = DiffusionConfig(num_steps=50, max_length=24, objective=objective)
        return Trainer(
            model=model(config),
            diffusion=config.diffusion(counts, tokenizer.mask_token_id, tokenizer.pad_token_id),
            config=config,
            train=TrainingConfig(lr=1e-3, batch_size=4, warmup_steps=0, seed=0, eval_batch_size=4),
            tokenizer=tokenizer,
            train_set=data,
            device=torch.device("cpu"),
        )

    def checkpoint(task: str | None = None) -> Checkpoint:
        config = DiffusionConfig(num_steps=32, max_length=24, word_freq_lambda=0.3, task=task,
                                 max_target_length=6 if task else 0)  # fmt: skip
        lengths = torch.tensor([0, 1, 3, 2, 4, 1, 2, 3, 1])
        return Checkpoint(model(config).eval(), tokenizer, config, counts, REPO, lengths)

    return {"data": data, "trainer": trainer, "checkpoint": checkpoint}


def test_the_audit_names_a_factory_call_without_a_device(monkeypatch):
    """The check can fail: the schedule's construction-time check makes its grid on the host,
    which the audit reports once that function is no longer listed."""
    from diffusion import schedule

    with DeviceAudit() as audit:
        schedule.NoiseSchedule("mutual", 8, 0.3)
    assert set(audit.sites) == {("diffusion/schedule.py", "_check_monotone")}
    assert not audit.unexpected()
    monkeypatch.delitem(HOST_SIDE, ("diffusion/schedule.py", "_check_monotone"))
    (message,) = audit.unexpected()
    assert re.match(r"diffusion/schedule\.py:\d+ _check_monotone\(\) torch\.arange", message)


@pytest.mark.parametrize("objective", ["d3pm", "mdlm"])
def test_a_training_step_and_the_dev_bound_create_every_tensor_on_the_data_device(run, objective):
    trainer = run["trainer"](objective)
    with DeviceAudit() as audit:
        assert trainer.train_step() is not None
        assert trainer.evaluate(run["data"].select(range(8)))["nats_per_token"] > 0
    assert not audit.unexpected(), "\n".join(audit.unexpected())


@pytest.mark.parametrize("bound", ["discrete", "continuous"])
def test_the_bounds_create_every_tensor_on_the_data_device(run, tokenizer, bound):
    trainer = run["trainer"]("d3pm")
    batches = [fetch(run["data"], range(i, i + 4), tokenizer.pad_token_id) for i in (0, 4)]
    with DeviceAudit() as audit, torch.no_grad():
        out = estimate_bound(trainer.diffusion, trainer.model.eval(), batches, bound, 10)
    assert out["num_sequences"] == 8 and out["nats_per_token"] > 0
    assert not audit.unexpected(), "\n".join(audit.unexpected())


@pytest.mark.parametrize("sampler", ["ancestral", "cached", "rowcache", "official"])
def test_each_sampler_creates_every_tensor_on_the_data_device(run, sampler):
    ckpt = run["checkpoint"]()
    with DeviceAudit() as audit, torch.no_grad():
        out = generate(ckpt, 3, 0, 3, SamplingConfig(sampler=sampler, sampling_steps=8))
    assert len(out.ids) == 3
    assert not audit.unexpected(), "\n".join(audit.unexpected())


def test_the_seq2seq_sampler_with_guidance_creates_every_tensor_on_the_data_device(run):
    ckpt = run["checkpoint"]("toy")
    with DeviceAudit() as audit, torch.no_grad():
        out = generate_candidates(ckpt, [[2023, 2003], [1996]], 2, 2,
                                  SamplingConfig(sampling_steps=6), 1.5, 6)  # fmt: skip
    assert out.calls > 0
    assert not audit.unexpected(), "\n".join(audit.unexpected())
