"""Time-step designs of the paper (Sec. 4.3): none, a prepended time token, layer-wise."""

from __future__ import annotations

import math

import torch
from torch import nn

TIMESTEPS = ("none", "token", "layerwise")


def sinusoidal(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoidal embedding of (possibly fractional) steps t (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    angles = t.to(torch.float32).unsqueeze(-1) * freqs
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return nn.functional.pad(emb, (0, dim - 2 * half))


class TimeEmbedding(nn.Module):
    """u (B,) → (B, hidden): sinusoidal features of t = u·T followed by a two-layer MLP."""

    def __init__(self, hidden: int, num_steps: int):
        super().__init__()
        self.hidden = hidden
        self.num_steps = num_steps
        self.mlp = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.SiLU(), nn.Linear(4 * hidden, hidden)
        )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(u * self.num_steps, self.hidden))


class LayerwiseTime(nn.Module):
    """One zero-initialised projection per layer, so a pretrained network starts unchanged."""

    def __init__(self, hidden: int, num_layers: int, num_steps: int):
        super().__init__()
        self.embed = TimeEmbedding(hidden, num_steps)
        self.proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(num_layers))
        for layer in self.proj:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, u: torch.Tensor) -> list[torch.Tensor]:
        """u (B,) → one (B, 1, hidden) shift per layer."""
        e = nn.functional.silu(self.embed(u))
        return [proj(e).unsqueeze(1) for proj in self.proj]
