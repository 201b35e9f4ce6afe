"""The dev figure of a training run: the continuous bound with one draw per sequence (the
discrete bound for the ``linear`` schedule; the exact NLL for the autoregressive twin), with a
bar of network calls and a stop request asked before each; and a few samples of the model at
each evaluation (``dev_samples``), with their generative perplexity under a causal LM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import datasets
import torch

from common.precision import autocast
from common.progress import progress as progress_bar
from evaluation.bounds import calls_per_batch, estimate_bound
from evaluation.exact import dev_figures, sequence_nlls
from evaluation.gen_ppl import generative_perplexity
from generation.autoregressive import generate_left_to_right
from generation.config import SamplingConfig
from generation.unconditional import generate
from models.checkpoint import Checkpoint
from training.data import fetch
from training.stopping import EvaluationStopped, Watched

if TYPE_CHECKING:
    from training.trainer import Trainer


def dev_evaluation(
    trainer: Trainer, dev_set: datasets.Dataset, stop: Callable[[], int | None] = lambda: None
) -> dict:
    """The dev figure of ``trainer``'s model (its moving average with ``--ema``) on
    ``dev_set`` (``nats_per_token`` and the rest of ``evaluation.bounds.summarise``,
    ``bound``); ``stop()`` is asked before every network call (a signal abandons the
    evaluation: ``EvaluationStopped``)."""
    model = trainer.averaged.eval()
    size, pad = trainer.train.eval_batch_size, trainer.tokenizer.pad_token_id
    batches = (fetch(dev_set, range(i, min(i + size, len(dev_set))), pad)
               for i in range(0, len(dev_set), size))  # fmt: skip
    count = -(-len(dev_set) // size)
    enabled = trainer.rank == 0
    if trainer.config.autoregressive:
        bar = progress_bar(count, "dev NLL", "call", enabled=enabled, leave=False)

        def before_call() -> None:
            if stop() is not None:
                raise EvaluationStopped
            bar.update(1)

        with bar, autocast(trainer.precision, trainer.device):
            values, tokens = sequence_nlls(model, batches, trainer.device, before_call)
        return dev_figures(values, tokens)
    bound = "discrete" if trainer.config.schedule == "linear" else "continuous"
    calls = calls_per_batch(bound, trainer.config.num_steps, trainer.train.eval_step_size, 1)
    bar = progress_bar(calls * count, "dev bound", "call", enabled=enabled, leave=False)
    with bar, autocast(trainer.precision, trainer.device):
        result = estimate_bound(
            trainer.diffusion, Watched(model, bar, stop), batches, bound,
            trainer.train.eval_step_size, 1, trainer.train.data_seed, trainer.device,
        )  # fmt: skip
    result["bound"] = bound
    return result


def dev_samples(trainer: Trainer) -> dict:
    """``--eval_samples`` samples of ``trainer``'s model (its moving average with ``--ema``)
    as text, drawn with the default sampler in ``--eval_sample_steps`` steps (the twin: left
    to right), lengths from the training split's histogram, seeded by ``--data_seed`` (the
    same noise at every evaluation); with ``--eval_gen_ppl_model`` their generative perplexity.
    Training's random state is left as it was (exact resume holds)."""
    t, config = trainer.train, trainer.config
    model = trainer.averaged.eval()
    ckpt = Checkpoint(
        model, trainer.tokenizer, config, trainer.counts, Path(), trainer.lengths
    )  # the model in training: no folder
    sampling = SamplingConfig(sampler="auto", sampling_steps=t.eval_sample_steps,
                              seed=t.data_seed)  # fmt: skip
    length = 0 if trainer.lengths is not None else config.max_length
    devices = [trainer.device] if trainer.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the judge's loading too: nothing leaks
        with autocast(trainer.precision, trainer.device):
            if config.autoregressive:
                drawn = generate_left_to_right(ckpt, t.eval_samples, length, t.eval_samples,
                                               sampling)  # fmt: skip
            else:
                drawn = generate(ckpt, t.eval_samples, length, t.eval_samples, sampling)
        texts = trainer.tokenizer.batch_decode(drawn.ids, skip_special_tokens=True)
        out = {"samples": texts, "sampler": drawn.sampler,
               "sample_steps": None if config.autoregressive else t.eval_sample_steps}  # fmt: skip
        if t.eval_gen_ppl_model:
            judged = generative_perplexity(texts, t.eval_gen_ppl_model, device=str(trainer.device))
            if judged["gen_ppl_tokens"]:  # empty samples leave nothing to score
                out.update(judged)
    return out
