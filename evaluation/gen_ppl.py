"""Generative perplexity: how likely a causal LM (e.g. GPT-2 large, as MDLM) finds samples."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from common.errors import UsageError
from models.backbone import resolve_model_name

# Encoder families whose causal class is a decoder only with ``is_decoder`` set.
ENCODERS = ("bert", "roberta", "xlm-roberta", "electra", "camembert", "ernie")


def check_causal(config, name: str, flag: str = "--gen_ppl_model") -> None:
    """One UsageError unless ``config`` is a causal LM's: an encoder's config without
    ``is_decoder`` (a masked LM, such as a DiffusionBERT checkpoint) would score text with
    bidirectional attention, a figure that means nothing."""
    if config.model_type in ENCODERS and not getattr(config, "is_decoder", False):
        raise UsageError(
            f"{flag} {name}: a {config.model_type} masked LM (is_decoder false), not a "
            "causal LM; pass an autoregressive checkpoint (main.py --objective ar) or a causal "
            "LM such as GPT-2"
        )


def causal_path(model_name: str, flag: str = "--gen_ppl_model") -> str:
    """The local folder of the causal LM ``model_name`` (``models.resolve_model_name``), after
    ``check_causal``: one UsageError naming ``flag`` when it is not available offline or not
    a causal LM. Cheap: call it before the work that needs it."""
    path = resolve_model_name(model_name, flag, "leave the flag out")
    check_causal(AutoConfig.from_pretrained(path), model_name, flag)
    return path


@torch.no_grad()
def generative_perplexity(
    texts: Sequence[str], model_name: str, batch_size: int = 8, device: str = "cpu"
) -> dict[str, float]:
    """exp(mean NLL per token) of ``texts`` re-tokenised with the causal LM's own tokenizer.

    Each text is scored after a BOS token (the tokenizer's bos, else eos) so its first token
    counts too. Raises ``UsageError`` when the model is not available offline.
    """
    path = causal_path(model_name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
    start = tokenizer.bos_token_id
    if start is None:
        start = (
            tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.cls_token_id
        )
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", 1024
    )
    rows = [[start, *tokenizer(t, add_special_tokens=False)["input_ids"]][:limit] for t in texts]
    rows = [r for r in rows if len(r) > 1]
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size]
        width = max(len(r) for r in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for j, r in enumerate(batch):
            ids[j, : len(r)] = torch.tensor(r)
            mask[j, : len(r)] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), ids[:, 1:], reduction="none"
        )
        keep = mask[:, 1:].bool()
        total += nll[keep].sum().item()
        count += int(keep.sum())
    nats = total / count if count else float("nan")
    return {
        "gen_ppl": math.exp(nats),
        "gen_nats_per_token": nats,
        "gen_ppl_tokens": count,
    }
