"""Conditional generation from a seq2seq checkpoint: candidates per source, then MBR."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from common.progress import CallCounter, progress
from corpora.collate import collate
from diffusion import GuidedDenoiser, sample
from generation.config import SamplingConfig
from models.checkpoint import Checkpoint


@dataclass
class Candidates:
    """``ids[i]``: the target ids of every candidate of source i, each cut at its end;
    ``calls``: network calls (a guided call counts once: it runs as one doubled batch);
    ``row_forwards``: rows (source × candidate) the network ran on, summed over calls (a
    guided row counts once); ``sampler``: the sampler used (``auto`` resolved)."""

    ids: list[list[list[int]]] = field(default_factory=list)
    calls: int = 0
    row_forwards: int = 0
    sampler: str = ""


def conditional_batch(
    sources: list[list[int]], max_target_length: int, mask_id: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reverse process's start: each row is its source ids, ``max_target_length`` [M]
    and right padding. Returns xT (B, L) and target_mask (B, L) bool (the [M] positions)."""
    rows = [source + [mask_id] * max_target_length for source in sources]
    return collate(rows, pad_id, [len(source) for source in sources])


def cut_target(ids: list[int], stop_ids: set[int]) -> list[int]:
    """The generated target up to (not including) its first stop token ([SEP] or padding)."""
    for position, token in enumerate(ids):
        if token in stop_ids:
            return ids[:position]
    return ids


@torch.no_grad()
def generate_candidates(
    ckpt: Checkpoint,
    sources: list[list[int]],
    mbr_size: int,
    batch_size: int,
    sampling: SamplingConfig,
    cfg_weight: float = 0.0,
    max_target_length: int | None = None,
) -> Candidates:
    """``mbr_size`` samples of the target for every source (prompted ids), ``batch_size``
    rows per network call; the last batch may be partial. Deterministic for a seed and a
    batch size."""
    sampling = sampling.for_model(ckpt.config.timestep)  # resolves ``auto``
    num_steps = sampling.steps(ckpt.config.num_steps)
    sampler = sampling.sampler_object()
    device = next(ckpt.model.parameters()).device
    tok = ckpt.tokenizer
    width = max_target_length or ckpt.config.max_target_length
    diffusion = ckpt.diffusion("exact")
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    rows = [(i, k) for i in range(len(sources)) for k in range(mbr_size)]
    out = Candidates(ids=[[] for _ in sources], sampler=sampling.sampler)
    stop = {tok.sep_token_id, tok.pad_token_id}
    per_batch = num_steps // sampling.step_size
    bar = progress(-(-len(rows) // batch_size) * per_batch, "sampling", "step")
    done_tokens, started = 0, time.perf_counter()
    for batch_index, start in enumerate(range(0, len(rows), batch_size)):
        chunk = [sources[i] for i, _ in rows[start : start + batch_size]]
        xT, target_mask = conditional_batch(chunk, width, tok.mask_token_id, tok.pad_token_id)
        xT, target_mask = xT.to(device), target_mask.to(device)
        source_mask = (xT != tok.pad_token_id) & ~target_mask
        denoiser = CallCounter(
            GuidedDenoiser(ckpt.model, source_mask, tok.mask_token_id, cfg_weight), bar
        )
        result = sample(
            diffusion, denoiser, xT, target_mask, sampler, num_steps, sampling.step_size, generator
        )
        out.calls += result.calls
        out.row_forwards += result.row_forwards
        x0 = result.x0.cpu().tolist()  # one device-to-host copy per batch
        for row, (i, _) in enumerate(rows[start : start + batch_size]):
            begin = len(sources[i])
            out.ids[i].append(cut_target(x0[row][begin : begin + width], stop))
            done_tokens += len(out.ids[i][-1])
        bar.update((batch_index + 1) * per_batch - bar.n)  # steps that needed no call
        speed = done_tokens / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(calls=out.calls, tokens_per_s=f"{speed:.1f}")
    bar.close()
    return out
