"""The autoregressive twin: the same BERT backbone read left to right.

transformers' causal head for the backbone (``BertLMHeadModel``: BERT with ``is_decoder=True``,
a causal attention mask) reads ``[CLS] x [SEP]`` and predicts every next token: x_1 from
[CLS], x_i from x_<i, and the end token [SEP] after the last one. Its NLL is exact, so it pairs
with a diffusion bound sentence by sentence (``evaluation.compare``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional
from torch.utils.checkpoint import checkpoint
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from common.errors import UsageError
from diffusion.blocks import row_blocks
from diffusion.losses import LossOutput


def lm_head(model: PreTrainedModel) -> nn.Module:
    """The prediction head of a BERT- or RoBERTa-style LM (``cls`` or ``lm_head``)."""
    for name in ("cls", "lm_head"):
        if hasattr(model, name):
            return getattr(model, name)
    raise UsageError(f"{type(model).__name__} has no language-model head (cls or lm_head)")


def require_compiler() -> None:
    """One UsageError unless a C++ compiler is on the PATH (torch.compile builds with one)."""
    tried = [c for c in (os.environ.get("CXX"), "g++", "clang++", "c++") if c]
    if not any(shutil.which(c) for c in tried):
        raise UsageError(
            "--compile: torch.compile builds its kernels with a C++ compiler and none was "
            f"found (tried {', '.join(tried)}): install g++ or set CXX, or drop --compile"
        )


def in_row_blocks(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    target: torch.Tensor,
    vocab: int,
) -> torch.Tensor:
    """``score(hidden, target)`` → (n,) log-probabilities, computed in row blocks that backward
    recomputes (``torch.utils.checkpoint``), so no (n, V) tensor is kept for backward; with no
    rows, one call on the empty block (so that backward still reaches the head under DDP).

    Args: hidden (n, hidden) states, target (n,) ids, vocab V (sizes the blocks)."""
    parts = [
        checkpoint(score, hidden[b], target[b], use_reentrant=False)
        if torch.is_grad_enabled()
        else score(hidden[b], target[b])
        for b in row_blocks(hidden.shape[0], vocab, hidden.device)
    ]
    return torch.cat(parts) if parts else score(hidden, target)


def causal_config(backbone: str):
    """The backbone's config as a decoder (``is_decoder=True``: a causal attention mask)."""
    config = AutoConfig.from_pretrained(backbone)
    config.is_decoder = True
    return config


def build_causal_lm(backbone: str, from_scratch: bool) -> PreTrainedModel:
    """transformers' causal LM of the backbone (pretrained weights unless ``from_scratch``);
    one UsageError when transformers has none for its architecture."""
    config = causal_config(backbone)
    try:
        if from_scratch:
            return AutoModelForCausalLM.from_config(config)
        return AutoModelForCausalLM.from_pretrained(backbone, config=config)
    except ValueError as error:
        raise UsageError(
            f"--objective ar: {backbone} ({config.model_type}) has no causal-LM class in "
            f"transformers ({str(error).splitlines()[0][:160]}); use a BERT or RoBERTa backbone"
        ) from None


class CausalTwin(nn.Module):
    """p_θ(x) = Π p_θ(x_i | x_<i) · p_θ([SEP] | x): the autoregressive baseline.

    ``mlm`` is the Hugging Face causal LM (the attribute every checkpoint's network lives
    under, so that saving and loading treat both kinds alike); ``time`` is None (no time
    design). The head runs only at the predicted positions, in row blocks.
    """

    timestep = "none"
    time = None
    extra_positions = 2  # [CLS] and [SEP]

    def __init__(self, mlm: PreTrainedModel, pad_id: int, cls_id: int, sep_id: int):
        super().__init__()
        if not getattr(mlm.config, "is_decoder", False):
            raise UsageError(
                f"{type(mlm).__name__} is not a decoder (config is_decoder is false): its "
                "attention is bidirectional, so it is not an autoregressive model"
            )
        self.mlm = mlm
        self.pad_id, self.cls_id, self.sep_id = pad_id, cls_id, sep_id

    def compile_encoder(self) -> None:
        """``torch.compile`` the encoder in place (the head stays eager, as the denoiser's)."""
        require_compiler()
        self.mlm.base_model.compile()

    def inputs(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[CLS] x0 [SEP]`` per row, right-padded: ids (B, L + 2) and attention (B, L + 2).

        Args: x0: (B, L) right-padded ids (padding = the pad id)."""
        batch, length = x0.shape
        lengths = (x0 != self.pad_id).sum(-1)
        ids = torch.cat([x0.new_full((batch, 1), self.cls_id), x0, x0.new_full((batch, 1),
                         self.pad_id)], dim=1)  # fmt: skip
        ids = ids.scatter(1, (lengths + 1).unsqueeze(-1), self.sep_id)
        positions = torch.arange(length + 2, device=x0.device)
        attention = (positions < (lengths + 2).unsqueeze(-1)).long()
        return ids, attention

    def predicted(self, x0: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
        """(B, L + 1) bool: which next-token predictions count. Position j predicts token j + 1
        of ``[CLS] x0 [SEP]``: the ``target_mask`` (B, L) positions up to the first end token
        and that end token, the one appended when the target holds none (a seq2seq row's
        target region is its tokens, then [SEP]s up to its fixed size: the twin ends at the
        first, and the [SEP]s after it are not its tokens)."""
        ends = (x0 == self.sep_id) & target_mask
        after_end = (ends.long().cumsum(-1) - ends.long()) > 0
        lengths = (x0 != self.pad_id).sum(-1, keepdim=True)
        scored = torch.cat([target_mask & ~after_end, target_mask.new_zeros(x0.shape[0], 1)], 1)
        appended = torch.zeros_like(scored).scatter(1, lengths, True)
        return scored | (appended & ~ends.any(-1, keepdim=True))

    def forward(
        self, x0: torch.Tensor, target_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log p_θ of every predicted token, (N,) float32, and where they are, (B, L + 1) bool
        (``predicted``). The head runs at the predicted positions only: with gradients in one
        pass, keeping their (N, V) logits for backward as transformers' own LM loss does (a
        step as fast as a plain masked-LM step, where recomputed row blocks slow it down;
        docs/baselines.md); without gradients in row blocks, so evaluation holds no (N, V)
        tensor."""
        ids, attention = self.inputs(x0)
        hidden = self.mlm.base_model(
            input_ids=ids, attention_mask=attention, use_cache=False
        ).last_hidden_state
        scored = self.predicted(x0, target_mask)
        hidden, target = hidden[:, :-1][scored], ids[:, 1:][scored]
        if torch.is_grad_enabled():  # one pass, as transformers' own LM loss: no recompute
            return self._target_log_prob(hidden, target), scored
        vocab = self.mlm.config.vocab_size
        return in_row_blocks(self._target_log_prob, hidden, target, vocab), scored

    def _target_log_prob(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(n,) log p_θ(target) from hidden states (n, hidden) and ids (n,)."""
        logits = lm_head(self.mlm)(hidden).float()
        return -functional.cross_entropy(logits, target, reduction="none")

    def sequence_nll(
        self, x0: torch.Tensor, target_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact −log p_θ per row, (B,) float64 nats (the target tokens and the end token),
        and the target tokens per row (B,): the end token not counted (the diffusion records'
        unit), nor a seq2seq row's [SEP] fill after it."""
        log_probs, scored = self(x0, target_mask)
        nll = torch.zeros(scored.shape, dtype=torch.float64, device=x0.device)
        nll[scored] = -log_probs.to(torch.float64)
        return nll.sum(-1), scored.sum(-1) - 1  # every row scores exactly one end token


def ar_loss(network: nn.Module, x0: torch.Tensor, target_mask: torch.Tensor) -> LossOutput:
    """Next-token cross-entropy of ``network`` (a ``CausalTwin``, or its DDP wrapper): ``loss``
    summed over the predicted tokens and divided by the batch size (the diffusion losses'
    convention), ``total`` its sum, ``num_masked`` the predicted tokens, ``nats`` the exact NLL
    (``total``; the end tokens included, as in the dev figure).

    Args: x0, target_mask: (B, L) ids and bool (``CausalTwin.forward``)."""
    log_probs, scored = network(x0, target_mask)
    total = -log_probs.sum()
    nll = total.detach()
    return LossOutput(total / x0.shape[0], nll, scored.sum(), nll.to(torch.float64))
