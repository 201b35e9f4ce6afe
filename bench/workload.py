"""What the benchmarks time: a preset's network and batch, a replay of a run's network calls,
and one optimizer step per objective and precision."""

from __future__ import annotations

import collections
import contextlib
import functools

import torch

from bench.flops import forward_flops
from bench.harness import (
    precisions_of,
    step_key,
)
from common.precision import autocast
from diffusion import (
    d3pm_loss,
    mdlm_loss,
)
from models import DiffusionConfig, build_model, resolve_model_name
from models.checkpoint import denoiser_from
from training.optim import adamw

PRESETS = {"minilm": "minilm-l6", "bert-base": "the bert-base architecture, random weights"}


class Replay:
    """Wraps the denoiser, records its inputs, and can replay exactly those calls."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, xt, u, masked):
        self.calls.append((xt.clone(), u.clone(), masked.clone()))
        return self.model(xt, u, masked)

    def replay(self) -> None:
        for xt, u, masked in self.calls:
            self.model(xt, u, masked)

    def flops(self) -> float:
        """Forward FLOPs of the recorded calls (``forward_flops``)."""
        config, extra = self.model.mlm.config, self.model.extra_positions
        scored = torch.stack([masked.sum() for _, _, masked in self.calls]).tolist()
        return sum(
            forward_flops(config, xt.shape[0], xt.shape[1] + extra, n)
            for (xt, _, _), n in zip(self.calls, scored, strict=True)
        )


def build(args, tokenizer, config: DiffusionConfig):
    """The denoiser of the preset: MiniLM-L6's weights, or bert-base built from its config."""
    if args.preset == "minilm":
        return build_model(resolve_model_name(PRESETS["minilm"]), tokenizer, config, False)
    from transformers import AutoModelForMaskedLM, BertConfig

    mlm = AutoModelForMaskedLM.from_config(BertConfig(vocab_size=len(tokenizer)))
    return denoiser_from(mlm, tokenizer, config, "bert-base")


def setup(args):
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("minilm-l6"))  # bert-base vocab
    config = DiffusionConfig(num_steps=args.num_steps, word_freq_lambda=args.word_freq_lambda,
                             max_length=max(args.length, 8))  # fmt: skip
    torch.manual_seed(0)
    model = build(args, tokenizer, config).to(args.device)
    if args.compile:
        model.compile_encoder()
    counts = torch.randint(1, 10**6, (model.mlm.config.vocab_size,))
    diffusion = config.diffusion(counts, tokenizer.mask_token_id, tokenizer.pad_token_id)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(1000, 30000, (args.batch_size, args.length), generator=g).to(args.device)
    target = torch.ones_like(x0, dtype=torch.bool)
    return tokenizer, model, diffusion, x0, target


def train_steps(args, names: list[str]) -> tuple[dict, dict]:
    """One optimizer step per named objective and precision (``step_key``) on the same network
    and batch, and a function of a name giving the mean model FLOPs of that objective's steps
    so far."""
    device = torch.device(args.device)
    tokenizer, model, diffusion, x0, target = setup(args)
    optimizer = adamw(model, 1e-5, 0.0, device)
    g = torch.Generator(device=device)
    config, extra = model.mlm.config, model.extra_positions
    plain = 3 * forward_flops(config, x0.shape[0], x0.shape[1], x0.numel())
    scored = {name: [] for name in names}  # per step: the positions the head scored (on device)
    current = []

    def count(module, args, kwargs) -> None:
        masked = args[2] if len(args) > 2 else kwargs["masked"]
        scored[current[0]].append(masked.sum())

    model.register_forward_pre_hook(count, with_kwargs=True)

    def flops(name: str) -> float:
        if name == "plain":
            return plain
        per_step = torch.stack(scored[name]).double().mean().item()
        return 3 * forward_flops(config, x0.shape[0], x0.shape[1] + extra, per_step)

    calls = collections.Counter()

    def step(name: str, precision: str, eager: bool = False) -> None:
        """The k-th step of every precision draws its times and masks from seed k, so that
        the precisions' times are paired round by round. ``eager``: the compiled encoder run
        eagerly (``torch.compiler.set_stance``), the step as it is without --compile."""
        current[:] = [name]
        g.manual_seed(calls[name, precision, eager])
        calls[name, precision, eager] += 1
        stance = torch.compiler.set_stance("force_eager") if eager else contextlib.nullcontext()
        with stance, autocast(precision, device):
            if name == "plain":
                masked = torch.rand(x0.shape, device=device, generator=g) < 0.15
                labels = x0.masked_fill(~masked, -100)
                inputs = x0.masked_fill(masked, tokenizer.mask_token_id)
                loss = model.mlm(input_ids=inputs, labels=labels).loss
            elif name == "d3pm":
                loss = d3pm_loss(diffusion, model, x0, target, 0.01, generator=g).loss
            else:
                loss = mdlm_loss(diffusion, model, x0, target, generator=g).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    precisions = precisions_of(args)
    steps = {
        step_key(name, precision, precisions): functools.partial(step, name, precision)
        for name in names
        for precision in precisions
    }
    if args.compile and "fp32" in precisions and len(precisions) > 1:
        for name in names:  # the default without --compile, for bf16's speed-up over it
            steps[f"{name}@fp32-eager"] = functools.partial(step, name, "fp32", eager=True)
    return steps, {"flops": flops}
