"""compute_elbo.py's figures for a checkpoint on a set of texts: both bounds (given length and
full sequence) in every unit, and the toy grammar's truth where it is known."""

from __future__ import annotations

import math

import torch

from common.errors import UsageError
from corpora import toy
from corpora.collate import collate
from diffusion import TimeProposal
from diffusion.estimators import ESTIMATORS, TIME_AGNOSTIC
from evaluation.bounds import Terms, calls_per_batch, length_nll, sequence_bounds, summarise
from evaluation.proposal import fit_proposal, pilot_calls
from evaluation.report import NOT_A_BOUND
from evaluation.sentences import (
    in_input_order,
    longest_first,
    noise_keys,
    per_sentence,
    sentence_ids,
)
from models.checkpoint import Checkpoint


def check_estimator_fits(config, estimator: str, protocol: str, where: object) -> None:
    """One UsageError unless ``estimator`` can bound the checkpoint whose settings are
    ``config`` (a ``DiffusionConfig``; ``where`` names the checkpoint): the Rao–Blackwell
    estimators need a network that does not see the time and reveal rates that do not depend
    on the candidate token (no spindle, or the official protocol). Cheap: call it before the
    model and the data load."""
    if estimator not in TIME_AGNOSTIC:
        return
    if config.timestep != "none":
        raise UsageError(
            f"--estimator {estimator} needs a network that does not see the time; "
            f"{where} was trained with --timestep {config.timestep}: use --estimator conditioned"
        )
    if config.word_freq_lambda > 0 and protocol == "exact":
        raise UsageError(
            f"--estimator {estimator} needs reveal rates that do not depend on the candidate "
            f"token; {where} was trained with the spindle (word_freq_lambda "
            f"{config.word_freq_lambda}): use --estimator conditioned (or --protocol official, "
            "which is not a bound)"
        )


def noise_settings(
    num_steps: int, bound: str, step_size: int, protocol: str, seed: int, estimator: str,
    draws: int, proposal: TimeProposal | None,
) -> dict:  # fmt: skip
    """What defines a record's draws (its ``noise`` field): two records with the same noise
    settings drew the same times and masks for every sentence they share."""
    return {
        "keyed_by": "sentence id",
        "seed": seed,
        "bound": bound,
        "estimator": estimator if bound == "continuous" else None,
        "num_steps": num_steps,
        "eval_step_size": step_size if bound == "discrete" else None,
        "protocol": protocol,
        "draws": draws,
        "proposal": proposal.as_dict() if ESTIMATORS[estimator].uses_proposal else None,
    }


def toy_oracle(ckpt: Checkpoint, ids: list[list[int]], tokens: torch.Tensor) -> dict:
    """The toy grammar's exact NLL of the sentences ``ids`` and its entropy."""
    texts = [ckpt.tokenizer.decode(row) for row in ids]
    truth = torch.tensor(toy.sentence_nll(texts), dtype=torch.float64)
    return {
        "true_nats_per_sequence": truth.mean().item(),
        "true_nats_per_token": truth.sum().item() / tokens.sum().item(),
        "grammar_entropy_per_sentence": toy.entropy(),
    }


def bounds_in_input_order(
    diffusion, model, ids: list[list[int]], ids_str: list[str], pad: int, batch_size: int,
    bound: str, step_size: int, mc_samples: int, seed: int, device: torch.device,
    terms: Terms, estimator: str, proposal: TimeProposal | None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``sequence_bounds`` of ``ids`` batched longest first, returned in input order: values
    (N, K) and tokens (N,). Each sentence's noise is keyed by its id, so the order changes no
    value."""
    order = longest_first(ids)
    ordered = [ids[i] for i in order]
    batches = (
        collate(ordered[i : i + batch_size], pad) for i in range(0, len(ordered), batch_size)
    )
    values, tokens = sequence_bounds(
        diffusion, model, batches, bound, step_size, mc_samples, seed, device,
        progress=True, total=math.ceil(len(ids) / batch_size), terms=terms,
        keys=noise_keys(seed, [ids_str[i] for i in order]), estimator=estimator,
        proposal=proposal,
    )  # fmt: skip
    return in_input_order(order, values, tokens)


def likelihood_record(
    ckpt: Checkpoint,
    ids: list[list[int]],
    num_words: list[int],
    bound: str,
    step_size: int,
    mc_samples: int,
    protocol: str,
    batch_size: int,
    seed: int,
    device: torch.device,
    toy_truth: bool = False,
    estimator: str = "plain",
    proposal: TimeProposal | None = None,
) -> dict:
    """Bound every sequence of ``ids`` (token-id lists, no special tokens) and summarise.

    ``num_words`` are the sequences' whitespace-separated words in the dataset's own text
    (``tokenize_texts(..., count_words=True)``): perplexity per word is exp(NLL / words) in
    that unit, the DiffusionBERT paper's.

    Every sentence's noise is keyed by its id (``evaluation.sentences``), so two checkpoints
    bounded with one seed share their noise. ``estimator`` picks the continuous bound's
    estimator; ``importance`` fits its time proposal on a pilot unless ``proposal`` is given.

    Returns compute_elbo.py's record: settings, ``noise``, ``given_length`` (conditional on
    the number of tokens), ``full_sequence`` (+ −log p(length) from the checkpoint's length
    histogram), ``sentences`` (ids, counts, nats and ``length_nats`` per sentence) and, with
    ``toy_truth``, the toy grammar's exact NLL.
    """
    diffusion = ckpt.diffusion(protocol)
    pad = ckpt.tokenizer.pad_token_id
    ids_str = sentence_ids(ids)
    estimator = estimator if bound == "continuous" else "plain"
    check_estimator_fits(ckpt.config, estimator, protocol, ckpt.path)
    calls = 0
    if ESTIMATORS[estimator].uses_proposal and proposal is None:
        proposal = fit_proposal(diffusion, ckpt.model, ids, ids_str, pad, seed, batch_size, device)
        calls += pilot_calls(len(ids), batch_size)
    terms = Terms()
    values, tokens = bounds_in_input_order(
        diffusion, ckpt.model, ids, ids_str, pad, batch_size, bound, step_size, mc_samples,
        seed, device, terms, estimator, proposal,
    )  # fmt: skip
    calls += math.ceil(len(ids) / batch_size) * calls_per_batch(
        bound, ckpt.config.num_steps, step_size, mc_samples, estimator
    )
    words = torch.tensor(num_words)
    record = {
        "checkpoint": str(ckpt.path),
        "bound": bound,
        "num_steps": ckpt.config.num_steps,
        "eval_step_size": step_size if bound == "discrete" else None,
        "mc_samples": mc_samples if bound == "continuous" else 1,
        "protocol": protocol,
        "valid_bound": diffusion.valid_bound,
        "note": None if diffusion.valid_bound else NOT_A_BOUND,
        "seed": seed,
        "noise": noise_settings(
            ckpt.config.num_steps,
            bound,
            step_size,
            protocol,
            seed,
            estimator,
            values.shape[1],
            proposal,
        ),
        "network_calls": calls,
        "given_length": summarise(values, tokens, words),
        "terms": terms.figures(int(tokens.sum().item())),
    }
    if ckpt.lengths is not None:
        record["full_sequence"] = summarise(values, tokens, words, length_nll(ckpt.lengths, tokens))
    if toy_truth:
        record["toy_oracle"] = toy_oracle(ckpt, ids, tokens)
    record["sentences"] = per_sentence(ids_str, tokens, words, values)
    if ckpt.lengths is not None:  # the full-sequence bound per sentence: nats + length_nats
        record["sentences"]["length_nats"] = length_nll(ckpt.lengths, tokens).tolist()
    return record
