"""bf16 autocast (common.precision): where it is used, what it changes, and that training, the
bounds and the samplers stay right in it.

bf16 keeps 8 significant bits: every rounding has a relative error of at most u = 2^-9. The
tolerances below are derived from u; this CPU has no native bf16, but autocast's rounding is
the same emulated or native (only the speed differs), so the numbers are checked here.
"""

import contextlib
import math
from collections import Counter

import pytest
import torch

import training.trainer as trainer_module
from common import precision
from corpora import load_texts, tokenize_texts
from diffusion import make_sampler, sample
from evaluation.likelihood import likelihood_record
from models import DiffusionConfig, build_model
from models.checkpoint import Checkpoint
from tests import dense_reference as ref
from tests.enumeration import L, make_diffusion, model_distribution
from tests.test_sampling import chi_square_critical
from training.config import TrainingConfig
from training.trainer import Trainer

CPU = torch.device("cpu")
U = 2.0**-9  # unit roundoff of bf16


def bf16() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_bf16_is_used_only_where_the_device_computes_it_natively(monkeypatch):
    native = precision.native_bf16(CPU)
    assert precision.resolve_precision(True, CPU) == ("bf16" if native else "fp32")
    assert precision.resolve_precision(False, CPU) == "fp32"
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert precision.resolve_precision(True, CPU) == "fp32"
    assert "no AVX512-BF16/AMX" in precision.precision_note(True, CPU)
    assert precision.precision_note(False, CPU) is None
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert precision.resolve_precision(True, CPU) == "bf16"
    assert precision.precision_note(True, CPU) is None


class MatmulNet:
    """A fixed float32 network of x_t whose logits come from a matrix product, so autocast
    computes them in bf16: logits at i = A[i] + E[x_t at the other position] @ W."""

    def __init__(self, seed: int = 0, width: int = 16):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(L, ref.V, generator=g)
        self.e = torch.randn(ref.V, width, generator=g)
        self.w = torch.randn(width, ref.V, generator=g) / math.sqrt(width)

    def __call__(self, xt, u, masked):
        rows, cols = masked.nonzero(as_tuple=True)
        logits = (self.a[cols] + self.e[xt[rows, 1 - cols]] @ self.w).float()
        logits[:, ref.MASK] = -math.inf
        return logits.log_softmax(-1)


@pytest.mark.parametrize(("lam", "T", "step"), [(0.0, 8, 1), (0.3, 12, 3)])
def test_ancestral_samples_in_bf16_follow_the_bf16_network_exactly(lam, T, step):
    """The chi-square test of tests/test_sampling.py with the whole chain under bf16 autocast:
    the samplers' float64 draws and rates are untouched, so the samples follow the exact
    distribution of the (bf16) network."""
    diffusion, net = make_diffusion(lam, T), MatmulNet(1)
    xs = torch.tensor([[ref.MASK, 2]])
    with bf16():
        changed = net(xs, None, xs == ref.MASK)
        exact = model_distribution(diffusion, net, step)
    assert not torch.equal(changed, net(xs, None, xs == ref.MASK))  # autocast was active
    n = 40000
    with bf16():
        out = sample(
            diffusion, net, torch.full((n, L), ref.MASK), torch.ones(n, L, dtype=torch.bool),
            make_sampler("ancestral"), T, step, generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
    counts = Counter(map(tuple, out.x0.tolist()))
    cells = [x for x, p in exact.items() if p * n >= 5]
    stat = sum((counts.get(x, 0) - n * exact[x]) ** 2 / (n * exact[x]) for x in cells)
    assert stat < chi_square_critical(len(cells) - 1), stat


def _checkpoint(tiny_bert, tokenizer) -> Checkpoint:
    config = DiffusionConfig(num_steps=32, max_length=24, word_freq_lambda=0.3)
    torch.manual_seed(0)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True).eval()
    counts = torch.randint(1, 1000, (len(tokenizer),), generator=torch.Generator().manual_seed(0))
    return Checkpoint(model, tokenizer, config, counts, tiny_bert, None)


@pytest.mark.parametrize("bound", ["discrete", "continuous"])
def test_a_bound_in_bf16_agrees_with_fp32(tiny_bert, tokenizer, toy_txt, bound):
    """Tolerance: every term of the bound is a weight times −log p_θ(x0) at a masked
    position, and the same keyed noise gives both precisions the same masks and weights, so
    |bound_bf16 − bound_fp32| ≤ (Σ weights) · max |Δ log p|. A log-probability is a logit
    minus a log-sum-exp, so |Δ log p| ≤ 2 max |Δ logit|; each of the tiny BERT's 3 rounded
    stages (2 layers and the head) adds a relative error of at most 8u, so max |Δ logit| ≤
    3 · 8u · R, with R the range of the logits (the spread of the log-probabilities). Σ weights
    per token is the fp32 bound over the mean −log p at full masking."""
    ckpt = _checkpoint(tiny_bert, tokenizer)
    ids = tokenize_texts(load_texts(str(toy_txt)).select(range(24)), tokenizer, 24, "toy")[
        "input_ids"
    ]

    def per_token(cast) -> float:
        with cast:
            record = likelihood_record(ckpt, ids, [1] * len(ids), bound, 4, 2, "exact", 8, 3, CPU,
                                       estimator="conditioned")  # fmt: skip
        return record["given_length"]["nats_per_token"]

    fp32, low = per_token(contextlib.nullcontext()), per_token(bf16())
    assert low != fp32  # bf16 changed something
    x0 = torch.tensor([row + [0] * (24 - len(row)) for row in ids])
    masked = x0 != 0
    u = torch.full((len(ids),), 0.5, dtype=torch.float64)
    with torch.no_grad():
        log_probs = ckpt.model(torch.where(masked, tokenizer.mask_token_id, x0), u, masked)
    finite = log_probs[torch.isfinite(log_probs)]
    mean_nll = -log_probs.gather(1, x0[masked][:, None]).mean().item()
    tolerance = (fp32 / mean_nll) * 2 * 3 * 8 * U * (finite.max() - finite.min()).item()
    print(f"BOUND {bound} fp32 {fp32} bf16 {low} tolerance {tolerance}")
    assert abs(low - fp32) <= tolerance, (low, fp32, tolerance)


def _trainer(tiny_bert, tokenizer, data, seed: int, bf16_flag: bool) -> Trainer:
    config = DiffusionConfig(num_steps=50, max_length=24)
    torch.manual_seed(seed)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True)
    return Trainer(
        model=model,
        diffusion=config.diffusion(None, tokenizer.mask_token_id, tokenizer.pad_token_id),
        config=config,
        train=TrainingConfig(
            lr=2e-3,
            batch_size=16,
            lr_schedule="constant",
            warmup_steps=0,
            seed=seed,
            bf16=bf16_flag,
            eval_batch_size=64,
        ),
        tokenizer=tokenizer,
        train_set=data,
        device=CPU,
    )


def test_training_in_bf16_reaches_the_fp32_dev_bound(tiny_bert, tokenizer, toy_txt, monkeypatch):
    """Tolerance: bf16 rounding perturbs the trajectory; a perturbation that matters less than
    the choice of seed is harmless. Three fp32 runs (seeds 0–2) give the seed-to-seed standard
    deviation s of the dev bound after 15 steps; the bf16 run of seed 0 must land within
    3·s·√2 of the fp32 run of seed 0 (the difference of two runs that differ like two seeds,
    at 3 standard deviations), and closer to it than the other seeds' runs are."""
    monkeypatch.setattr(
        trainer_module, "resolve_precision", lambda flag, device: "bf16" if flag else "fp32"
    )
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    train, dev = data.select(range(352)), data.select(range(352, 400))

    def dev_bound(seed: int, flag: bool) -> float:
        trainer = _trainer(tiny_bert, tokenizer, train, seed, flag)
        assert trainer.precision == ("bf16" if flag else "fp32")
        for _ in range(15):
            assert trainer.train_step() is not None
        return trainer.evaluate(dev)["nats_per_token"]

    fp32 = [dev_bound(seed, False) for seed in range(3)]
    mean = sum(fp32) / 3
    spread = math.sqrt(sum((v - mean) ** 2 for v in fp32) / 2)
    low = dev_bound(0, True)
    assert low != fp32[0]
    print(f"TRAIN fp32 {fp32} bf16 {low} tol {3 * spread * math.sqrt(2)}")
    assert abs(low - fp32[0]) <= 3 * spread * math.sqrt(2), (low, fp32)
    assert abs(low - fp32[0]) < min(abs(other - fp32[0]) for other in fp32[1:])
