"""Batch plan, collation, learning-rate schedules, and the training step and its exact resume
on each device."""

import dataclasses
import math

import pytest
import torch

from common.errors import UsageError
from corpora import load_texts, tokenize_texts
from corpora.collate import collate
from models import DiffusionConfig, build_model
from training.batches import BatchPlan
from training.config import TrainingConfig
from training.loggers import Logger
from training.optim import adamw, lr_scheduler
from training.trainer import Trainer


def test_batch_plan_visits_each_example_once_per_epoch_and_splits_ranks():
    plan = BatchPlan(num_examples=103, micro_batch=4, world_size=2, accumulation=3, seed=1)
    assert plan.global_batch == 24 and plan.steps_per_epoch == 4
    seen = []
    for step in range(4):
        for micro in range(3):
            for rank in range(2):
                seen += plan.indices(step, micro, rank)
    assert len(seen) == len(set(seen)) == 96
    assert plan.indices(4, 0, 0) != plan.indices(0, 0, 0)  # a new permutation next epoch
    assert plan.indices(5, 1, 1) == plan.indices(5, 1, 1)


def test_batch_plan_rejects_a_dataset_smaller_than_one_batch():
    with pytest.raises(UsageError, match="fewer than one global batch"):
        BatchPlan(10, 8, 2, 1, 0)


def test_collate_right_pads():
    x0, mask = collate([[5, 6, 7], [8]], pad_id=0)
    assert x0.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


def test_inverse_sqrt_schedule_matches_the_reference_shape():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = lr_scheduler(optimizer, "invsqrt", 100)
    lrs = []
    for _ in range(400):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[50] == pytest.approx(0.5)
    assert lrs[100] == pytest.approx(1.0)
    assert lrs[400 - 1] == pytest.approx((100 / 399) ** 0.5)
    with pytest.raises(ValueError, match="lr_schedule 'cosine' is unknown"):
        lr_scheduler(optimizer, "cosine", 10)


def _trainer(tiny_bert, tokenizer, data, device: torch.device) -> Trainer:
    """A trainer of the tiny BERT on ``device``, in bf16 where the device computes it."""
    config = DiffusionConfig(num_steps=50, max_length=24)
    torch.manual_seed(0)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True).to(device)
    return Trainer(
        model=model,
        diffusion=config.diffusion(None, tokenizer.mask_token_id, tokenizer.pad_token_id),
        config=config,
        train=TrainingConfig(
            lr=1e-3, batch_size=4, lr_schedule="constant", warmup_steps=0, seed=0, bf16=True
        ),
        tokenizer=tokenizer,
        train_set=data,
        device=device,
    )


def test_training_steps_resume_exactly_on_the_device(tiny_bert, tokenizer, toy_txt, device):
    """Four steps in one go equal two steps, a round trip of the weights and the training
    state into a fresh trainer, and two more: the same losses and the same weights."""
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    whole = _trainer(tiny_bert, tokenizer, data, device)
    losses = [whole.train_step()["loss"] for _ in range(4)]
    first = _trainer(tiny_bert, tokenizer, data, device)
    head = [first.train_step()["loss"] for _ in range(2)]
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    state = first.state_dict()
    torch.manual_seed(123)  # the resumed trainer restores every RNG itself
    second = _trainer(tiny_bert, tokenizer, data, device)
    second.model.load_state_dict(weights)
    second.load_state_dict(state)
    tail = [second.train_step()["loss"] for _ in range(2)]
    assert all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert head + tail == pytest.approx(losses, rel=1e-5)
    assert second.step == whole.step == 4
    for a, b in zip(whole.model.parameters(), second.model.parameters(), strict=True):
        assert a.device.type == device.type
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_adamw_is_fused_on_cpu_and_takes_the_reference_step():
    """The fused CPU kernel (one pass over all parameters) against torch's for-loop AdamW: the
    same parameters after three steps, to float32 rounding."""
    torch.manual_seed(0)
    fused_net, loop_net = torch.nn.Linear(7, 5), torch.nn.Linear(7, 5)
    loop_net.load_state_dict(fused_net.state_dict())
    start = [p.detach().clone() for p in fused_net.parameters()]
    fused = adamw(fused_net, 1e-2, 0.01, torch.device("cpu"))
    loop = torch.optim.AdamW(loop_net.parameters(), lr=1e-2, weight_decay=0.01, foreach=False)
    assert fused.defaults["fused"] is True
    for _ in range(3):
        x = torch.randn(4, 7)
        for net, optimizer in ((fused_net, fused), (loop_net, loop)):
            net(x).square().sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    for a, b, a0 in zip(fused_net.parameters(), loop_net.parameters(), start, strict=True):
        assert (a - a0).abs().min() > 1e-3 and torch.allclose(a, b, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
@pytest.mark.parametrize("clip", [0.0, 1e-3])
def test_the_logged_gradient_norm_is_that_of_the_gradients_applied(
    tiny_bert, tokenizer, toy_txt, monkeypatch, clip
):
    """The step's ``grad_norm`` is the global L2 norm of the gradients the optimizer sees,
    summed by hand over every parameter, before clipping (with --max_grad_norm, the gradients
    applied have the clipped norm)."""
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    trainer = _trainer(tiny_bert, tokenizer, data, torch.device("cpu"))
    trainer.train = dataclasses.replace(trainer.train, max_grad_norm=clip)
    seen = []
    step = trainer.optimizer.step

    def watched(*args, **kwargs):
        squares = [float((p.grad.double() ** 2).sum()) for p in trainer.model.parameters()
                   if p.grad is not None]  # fmt: skip
        seen.append(math.sqrt(sum(squares)))
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", watched)
    record = trainer.train_step()
    assert record["grad_norm"] > 0
    if clip:
        assert seen[0] == pytest.approx(clip, rel=1e-4) and record["grad_norm"] > 10 * clip
    else:
        assert record["grad_norm"] == pytest.approx(seen[0], rel=1e-4)  # fp32 sums


def _ema_trainer(tiny_bert, tokenizer, data, decay):
    trainer = _trainer(tiny_bert, tokenizer, data, torch.device("cpu"))
    return Trainer(
        model=trainer.model, diffusion=trainer.diffusion, config=trainer.config,
        train=dataclasses.replace(trainer.train, ema=decay, bf16=False), tokenizer=tokenizer,
        train_set=data, device=torch.device("cpu"),
    )  # fmt: skip


def test_the_moving_average_is_the_hand_computed_one(tiny_bert, tokenizer, toy_txt):
    """--ema d: after step 1 the average is the weights, then a ← d·a + (1 − d)·w."""
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    trainer = _ema_trainer(tiny_bert, tokenizer, data, 0.5)
    hand = None
    for _ in range(3):
        trainer.train_step()
        weights = {k: v.detach().clone().double() for k, v in trainer.model.named_parameters()}
        hand = weights if hand is None else {k: 0.5 * hand[k] + 0.5 * weights[k] for k in hand}
    averaged = dict(trainer.averaged.named_parameters())
    assert any(not torch.equal(averaged[k].double(), weights[k]) for k in weights)
    for name, value in hand.items():
        assert torch.allclose(averaged[name].double(), value, atol=1e-6), name


def test_a_run_with_a_moving_average_resumes_exactly(tiny_bert, tokenizer, toy_txt):
    """Four steps straight equal two, then a fresh trainer holding the checkpoint's (averaged)
    weights and the training state, then two: the raw weights and the average alike."""
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    whole = _ema_trainer(tiny_bert, tokenizer, data, 0.9)
    losses = [whole.train_step()["loss"] for _ in range(4)]
    first = _ema_trainer(tiny_bert, tokenizer, data, 0.9)
    head = [first.train_step()["loss"] for _ in range(2)]
    saved = {k: v.clone() for k, v in first.averaged.state_dict().items()}  # what a save writes
    state = first.state_dict()
    second = _ema_trainer(tiny_bert, tokenizer, data, 0.9)
    second.model.load_state_dict(saved)  # the checkpoint's weights, as a resume loads them
    second.load_state_dict(state)
    tail = [second.train_step()["loss"] for _ in range(2)]
    assert head + tail == pytest.approx(losses, rel=1e-6)
    for a, b in zip(whole.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(whole.averaged.parameters(), second.averaged.parameters(), strict=True):
        assert torch.equal(a, b)


class Records(Logger):
    """Keeps the training records it hears."""

    def __init__(self):
        self.records = []

    def train(self, record):
        self.records.append(record)


def test_elapsed_time_and_the_first_training_figure_run_across_a_resume(
    tiny_bert, tokenizer, toy_txt, tmp_path, monkeypatch
):
    """A resumed run's ``elapsed_s`` goes on from the time the earlier process trained (not
    from 0), and its first logged training figure is the run's first, not the resumed
    process's."""
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    settings = {"max_steps": 2, "logging_steps": 1, "eval_steps": 1000}
    first = _trainer(tiny_bert, tokenizer, data, torch.device("cpu"))
    first.train = dataclasses.replace(first.train, **settings)
    clock = iter(range(0, 10_000, 100))  # every call of time.time() is 100 s later
    monkeypatch.setattr("training.loop.time.time", lambda: float(next(clock)))
    log = Records()
    first.fit(data.select(range(4)), tmp_path, [log])
    state = first.state_dict()
    first = log.records[0]["train_nats_per_token"]
    assert state["first_train_nats_per_token"] == first
    second = _trainer(tiny_bert, tokenizer, data, torch.device("cpu"))
    second.train = dataclasses.replace(second.train, **{**settings, "max_steps": 4})
    second.load_state_dict(state)
    resumed = Records()
    second.fit(data.select(range(4)), tmp_path, [resumed])
    assert [r["step"] for r in resumed.records] == [3, 4]
    assert resumed.records[0]["elapsed_s"] > state["elapsed_s"] >= log.records[-1]["elapsed_s"]
    assert second.first_train == first != resumed.records[0]["train_nats_per_token"]
    assert second.state_dict()["elapsed_s"] > resumed.records[-1]["elapsed_s"]
    assert state["samples"]["step"] == 2  # the evaluation at the end of the first process


def test_samples_at_evaluation_leave_training_as_it_was(tiny_bert, tokenizer, toy_txt):
    """An evaluation draws --eval_samples texts, the same ones for the same weights (seeded by
    --data_seed), and training after it takes the steps it would have taken without it."""
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    dev = data.select(range(8))
    plain = _trainer(tiny_bert, tokenizer, data, torch.device("cpu"))
    plain.train = dataclasses.replace(plain.train, eval_samples=0)
    losses = [plain.train_step()["loss"] for _ in range(4)]
    sampled = _trainer(tiny_bert, tokenizer, data, torch.device("cpu"))
    sampled.train = dataclasses.replace(sampled.train, eval_samples=3, eval_sample_steps=8)
    head = [sampled.train_step()["loss"] for _ in range(2)]
    modes = []
    hook = sampled.model.register_forward_hook(lambda *_: modes.append(torch.is_grad_enabled()))
    first = sampled.evaluate(dev)
    hook.remove()
    assert modes and not any(modes)  # the bound and the samples build no autograd graph
    again = sampled.evaluate(dev)
    tail = [sampled.train_step()["loss"] for _ in range(2)]
    assert head + tail == losses
    assert len(first["samples"]) == 3 and all(isinstance(t, str) for t in first["samples"])
    assert first["samples"] == again["samples"] and first["sample_steps"] == 8
    assert sampled.samples == {"step": 2, **{k: again[k] for k in ("samples", "sampler",
                                                                    "sample_steps")}}  # fmt: skip
    assert "samples" not in plain.evaluate(dev) and plain.samples is None
    carried = _trainer(tiny_bert, tokenizer, data, torch.device("cpu"))
    carried.load_state_dict(sampled.state_dict())  # a resumed run's cards keep them
    assert carried.samples == sampled.samples
