"""The exact likelihood of the autoregressive twin, in the units and records of the diffusion
bounds: its dev figure (main.py), and compute_elbo.py's record, sentence by sentence.

The twin predicts every token of a sentence and then the end token [SEP], so its NLL is of the
whole sequence, length included: it pairs with a diffusion record's full-sequence bound (the
given-length bound plus −log p(length), ``length_nats`` per sentence). Per-token figures divide
by the sentence's tokens (the end token not counted) in both kinds of record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from common.progress import progress as progress_bar
from corpora.collate import collate
from evaluation.bounds import summarise
from evaluation.sentences import in_input_order, longest_first, per_sentence, sentence_ids
from models.causal import CausalTwin

PREDICTS = (
    "every token of the sentence from the ones before it ([CLS] first), then the end token "
    "[SEP]: the NLL of the whole sequence, length included; per token = over the sentence's "
    "tokens (the end token not counted)"
)


@torch.no_grad()
def sequence_nlls(
    model: CausalTwin,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    before_call: Callable[[], None] = lambda: None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact NLL per sequence (N,) float64 and its tokens (N,), in the batches' order.

    Args: batches of (x0 (B, L) ids, target_mask (B, L) bool); ``before_call`` runs before
    every network call (a progress bar, a stop request)."""
    values, tokens = [], []
    for x0, target_mask in batches:
        before_call()
        nll, count = model.sequence_nll(x0.to(device), target_mask.to(device))
        values.append(nll.cpu())
        tokens.append(count.cpu())
    if not values:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    return torch.cat(values), torch.cat(tokens)


def exact_record(
    model: CausalTwin,
    ids: list[list[int]],
    num_words: list[int],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    checkpoint: str,
) -> dict:
    """compute_elbo.py's record for an autoregressive checkpoint: the exact NLL of every
    sequence of ``ids`` (token-id lists, no special tokens), summarised like a bound
    (``full_sequence``; ``given_length`` is null: the twin does not condition on the length)
    and per sentence (``sentences``: id, tokens, words, nats)."""
    order = longest_first(ids)
    batches = [
        collate([ids[i] for i in order[start : start + batch_size]], pad_id)
        for start in range(0, len(order), batch_size)
    ]
    bar = progress_bar(len(batches), "exact NLL", "call", leave=False)
    with bar:
        values, tokens = sequence_nlls(model, batches, device, lambda: bar.update(1))
    values, tokens = in_input_order(order, values.unsqueeze(-1), tokens)
    words = torch.tensor(num_words)
    return {
        "checkpoint": checkpoint,
        "bound": "exact",
        "kind": "autoregressive",
        "exact": True,
        "predicts": PREDICTS,
        "num_steps": None,
        "eval_step_size": None,
        "mc_samples": 1,
        "protocol": "exact",
        "valid_bound": True,
        "note": None,
        "seed": None,
        "noise": None,
        "network_calls": len(batches),
        "given_length": None,
        "full_sequence": summarise(values, tokens, words),
        "sentences": per_sentence(sentence_ids(ids), tokens, words, values),
    }


def dev_figures(values: torch.Tensor, tokens: torch.Tensor) -> dict:
    """main.py's dev record of the twin: the exact NLL per token (``nats_per_token``, its
    perplexity) over the dev set. Args: values, tokens (N,)."""
    figures = summarise(values.unsqueeze(-1), tokens)
    figures["bound"] = "exact"
    if not math.isfinite(figures["nats_per_token"]):
        raise FloatingPointError("the dev NLL is not finite")
    return figures
