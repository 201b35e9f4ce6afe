"""The DiffusionBERT denoiser: a Hugging Face masked-LM plus one of the paper's time designs."""

from __future__ import annotations

import functools

import torch
from torch import nn
from transformers import PreTrainedModel

from common.errors import UsageError
from models.causal import in_row_blocks, lm_head, require_compiler
from models.time_embedding import TIMESTEPS, LayerwiseTime, TimeEmbedding


class DiffusionBert(nn.Module):
    """p_θ(x0 | x_t) from a masked-LM network; implements ``diffusion.Denoiser``.

    The network reads ``[CLS] x_t [SEP]`` per row (the [SEP] right after the row's last real
    token, padding after it and not attended), and with the ``token`` design a learned time
    embedding as an extra input position after [CLS]. The LM head runs only at the positions
    that are asked for, and the [M] logit is set to −inf (SUBS: [M] is never a candidate x0).
    """

    def __init__(
        self,
        mlm: PreTrainedModel,
        timestep: str,
        num_steps: int,
        mask_id: int,
        pad_id: int,
        cls_id: int,
        sep_id: int,
    ):
        super().__init__()
        if timestep not in TIMESTEPS:
            raise UsageError(
                f"--timestep {timestep!r} is unknown: choose one of {', '.join(TIMESTEPS)}"
            )
        self.mlm = mlm
        self.timestep = timestep
        self.mask_id, self.pad_id, self.cls_id, self.sep_id = (
            mask_id,
            pad_id,
            cls_id,
            sep_id,
        )
        hidden = mlm.config.hidden_size
        self.time: nn.Module | None = None
        self._shifts: list[torch.Tensor] | None = None
        if timestep == "token":
            self.time = TimeEmbedding(hidden, num_steps)
        elif timestep == "layerwise":
            layers = self.mlm.base_model.encoder.layer
            self.time = LayerwiseTime(hidden, len(layers), num_steps)
            for i, layer in enumerate(layers):
                layer.register_forward_pre_hook(
                    functools.partial(self._add_time, i), with_kwargs=True
                )

    @property
    def extra_positions(self) -> int:
        """Input positions besides x_t: [CLS], [SEP] and the time token."""
        return 3 if self.timestep == "token" else 2

    def _add_time(self, index: int, module: nn.Module, args: tuple, kwargs: dict):
        if self._shifts is None:
            return None
        if args:
            return (args[0] + self._shifts[index], *args[1:]), kwargs
        kwargs["hidden_states"] = kwargs["hidden_states"] + self._shifts[index]
        return args, kwargs

    def compile_encoder(self) -> None:
        """``torch.compile`` the encoder in place. The LM head stays eager: its row count (the
        masked positions) changes at every call. Parameters and their names do not change, so
        a checkpoint is the same with or without it."""
        require_compiler()
        self.mlm.base_model.compile()

    def hidden_states(self, xt: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Last hidden states aligned with x_t.

        Args:
            xt: (B, L) right-padded ids (padding = the tokenizer's pad id); u: (B,) times.
        Returns:
            (B, L, hidden).
        """
        batch, length = xt.shape
        real = xt != self.pad_id
        lengths = real.sum(-1)

        def column(value):
            return xt.new_full((batch, 1), value)

        ids = torch.cat([column(self.cls_id), xt, column(self.pad_id)], dim=1)
        ids = ids.scatter(1, (lengths + 1).unsqueeze(-1), self.sep_id)
        positions = torch.arange(length + 2, device=xt.device)
        attention = (positions < (lengths + 2).unsqueeze(-1)).long()
        embeds = self.mlm.get_input_embeddings()(ids)
        offset = 1
        if self.timestep == "token":
            time = self.time(u).to(embeds.dtype).unsqueeze(1)
            embeds = torch.cat([embeds[:, :1], time, embeds[:, 1:]], dim=1)
            attention = torch.cat([attention[:, :1], attention[:, :1], attention[:, 1:]], dim=1)
            offset = 2
        if self.timestep == "layerwise":
            self._shifts = self.time(u)
        try:
            out = self.mlm.base_model(inputs_embeds=embeds, attention_mask=attention)
        finally:
            self._shifts = None
        return out.last_hidden_state[:, offset : offset + length]

    accepts_target = True  # see diffusion.types.target_log_probs

    def forward(
        self,
        xt: torch.Tensor,
        u: torch.Tensor,
        masked: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """log p_θ(x0 | x_t) at the ``masked`` positions.

        Args:
            xt: (B, L) ids; u: (B,) times in [0, 1]; masked: (B, L) bool.
            target: optional (N,) ids: return only log p_θ(target) per position, computed in
                row blocks that backward recomputes, so no (N, V) tensor is kept.
        Returns:
            (N, V) float32 log-probabilities, N = masked.sum(), [M] at −inf; or (N,) with
            ``target``.
        """
        hidden = self.hidden_states(xt, u)[masked]
        if target is None:
            return self._log_probs(hidden)
        return in_row_blocks(self._target_log_prob, hidden, target, self.mlm.config.vocab_size)

    def _target_log_prob(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(n,) log p_θ(target) from hidden states (n, hidden) and ids (n,)."""
        return self._log_probs(hidden).gather(-1, target.unsqueeze(-1)).squeeze(-1)

    def _log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """(n, V) float32 log-probabilities from hidden states (n, hidden), [M] at −inf."""
        logits = lm_head(self.mlm)(hidden).float()
        mask_column = torch.tensor([self.mask_id], device=logits.device)
        # In place and outside autograd: no (N, V) copy in forward or backward. The gradient at
        # the [M] column is zero anyway (its probability is 0 and no loss reads its log-prob).
        with torch.no_grad():
            logits.index_fill_(-1, mask_column, float("-inf"))
        return logits.log_softmax(-1)
