"""Unconditional generation from a checkpoint: lengths, batches, semi-autoregressive windows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from common.errors import UsageError
from common.progress import CallCounter, progress
from diffusion import sample
from generation.config import SamplingConfig
from models.checkpoint import Checkpoint


@dataclass
class Generation:
    """Generated ids per sample (no padding), network calls, row forwards (rows the network
    ran on, summed over calls and windows), the sampler used (``auto`` resolved), and the x0
    predictions of the first sample at each step (``--show_process``): (step, prediction,
    masked), ``masked`` the positions still [MASK] in x_t."""

    ids: list[list[int]] = field(default_factory=list)
    calls: int = 0
    calls_per_batch: list[int] = field(default_factory=list)
    row_forwards: int = 0
    sampler: str = ""
    process: list[tuple[int, list[int], list[bool]]] = field(default_factory=list)


def draw_lengths(length_counts: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n lengths ≥ 1 drawn from the training split's length histogram (max_length + 1,)."""
    weights = length_counts.to(torch.float64).clone()
    weights[0] = 0.0
    if weights.sum() <= 0:
        raise UsageError("the checkpoint's length histogram is empty: pass --length")
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def check_length(ckpt: Checkpoint, length: int, semi_ar_windows: int = 1) -> None:
    """``--length`` fits the checkpoint (and is fixed for semi-autoregressive windows)."""
    if length > ckpt.config.max_length:
        raise UsageError(
            f"--length {length} exceeds the checkpoint's max_length {ckpt.config.max_length}; "
            "use --semi_ar_windows for longer text"
        )
    if semi_ar_windows > 1 and length < 2:
        raise UsageError("--semi_ar_windows needs a fixed --length ≥ 2")


def _all_masked(
    ckpt: Checkpoint, n: int, length: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch's starting point: lengths (n,) (``length``, or drawn from the checkpoint's
    histogram when it is 0), x_T (n, width) with every target position [MASK] and padding
    after, and the target mask (n, width), both on ``device``."""
    tok = ckpt.tokenizer
    if length > 0:
        lengths = torch.full((n,), length)
    elif ckpt.lengths is None:
        raise UsageError("the checkpoint has no length histogram: pass --length")
    else:
        lengths = draw_lengths(ckpt.lengths, n, generator)
    width = int(lengths.max())
    target = torch.arange(width) < lengths.unsqueeze(-1)
    xt = torch.full((n, width), tok.pad_token_id, dtype=torch.long)
    xt = xt.masked_fill(target, tok.mask_token_id).to(device)
    return lengths, xt, target.to(device)


@torch.no_grad()
def generate(
    ckpt: Checkpoint,
    num_samples: int,
    length: int,
    batch_size: int,
    sampling: SamplingConfig,
    semi_ar_windows: int = 1,
    show_process: bool = False,
) -> Generation:
    """Sample ``num_samples`` sequences of ``length`` tokens (0: lengths drawn from the
    checkpoint's histogram). With ``semi_ar_windows`` W > 1 each sample is W windows of
    ``length`` tokens, each new window conditioned on the last half of the previous one,
    ``length + (W − 1) · ⌈length / 2⌉`` tokens in all (MDLM's semi-autoregressive sampling).
    """
    device = next(ckpt.model.parameters()).device
    tok = ckpt.tokenizer
    sampling = sampling.for_model(ckpt.config.timestep)  # resolves ``auto``
    num_steps = sampling.steps(ckpt.config.num_steps)
    sampler = sampling.sampler_object()
    check_length(ckpt, length, semi_ar_windows)
    diffusion = ckpt.diffusion("exact")
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    lengths_generator = torch.Generator().manual_seed(sampling.seed)
    out = Generation(sampler=sampling.sampler)
    per_batch = semi_ar_windows * (num_steps // sampling.step_size)
    bar = progress(-(-num_samples // batch_size) * per_batch, "sampling", "step")
    done_tokens, started = 0, time.perf_counter()
    batch = {"first_step": 0, "tokens": 0}

    def show_rate() -> None:
        """tokens/s so far, counting the batch in progress by its share of steps done."""
        share = (bar.n - batch["first_step"]) / per_batch
        speed = (done_tokens + share * batch["tokens"]) / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(tokens_per_s=f"{speed:.1f}", refresh=False)

    denoiser = CallCounter(ckpt.model, bar, show_rate)
    for batch_index, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        lengths, xt, target = _all_masked(ckpt, n, length, lengths_generator, device)
        width = xt.shape[1]
        batch.update(first_step=bar.n, tokens=int(lengths.sum()))
        rows: torch.Tensor | None = None
        batch_calls = 0
        for window in range(semi_ar_windows):
            if window > 0:
                keep = width - (width + 1) // 2
                fresh = torch.full((n, width - keep), tok.mask_token_id, device=device)
                xt = torch.cat([rows[:, rows.shape[1] - keep :], fresh], dim=1)
                target = torch.zeros_like(target)
                target[:, keep:] = True
            record = show_process and start == 0
            result = sample(
                diffusion, denoiser, xt, target, sampler, num_steps, sampling.step_size,
                generator, record_history=record,
            )  # fmt: skip
            batch_calls += result.calls
            out.row_forwards += result.row_forwards
            new = result.x0 if window == 0 else result.x0[:, keep:]
            rows = new if rows is None else torch.cat([rows, new], dim=1)
            if record:
                out.process += [(s, pred[0].tolist(), mask[0].tolist())
                                for s, pred, mask in result.history]  # fmt: skip
        out.calls += batch_calls
        out.calls_per_batch.append(batch_calls)
        for row, n_tokens in zip(rows.cpu(), lengths.tolist(), strict=True):
            out.ids.append(row[:n_tokens].tolist() if semi_ar_windows == 1 else row.tolist())
            done_tokens += len(out.ids[-1])
        bar.update((batch_index + 1) * per_batch - bar.n)  # steps that needed no call
        speed = done_tokens / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(calls=out.calls, tokens_per_s=f"{speed:.1f}")
    bar.close()
    return out
