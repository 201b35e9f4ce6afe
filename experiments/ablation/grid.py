"""The grid of the paper's ablation (Table 2), declared once: its rows, and the paper's
figure for each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One row of the paper's Table 2 (plus one beyond it): initialisation, schedule, time
    design and objective. ``headline`` rows run with every seed of ``--seeds``."""

    name: str
    pretrained: bool
    spindle: bool
    timestep: str
    objective: str = "d3pm"
    headline: bool = False


# The grid, in one place. Paper (LM1B, per-word PPL bound): scratch (T−t+1)⁻¹ LTE 82.34,
# scratch spindle LTE 77.50, BERT (T−t+1)⁻¹ LTE 92.53 / PTE 79.95 / TAD 78.76, BERT spindle
# TAD 63.78. LTE = layerwise, PTE = token, TAD = none (time-agnostic).
GRID = (
    Row("scratch-mutual-layerwise", pretrained=False, spindle=False, timestep="layerwise"),
    Row("scratch-spindle-layerwise", pretrained=False, spindle=True, timestep="layerwise"),
    Row("pretrained-mutual-layerwise", pretrained=True, spindle=False, timestep="layerwise"),
    Row("pretrained-mutual-token", pretrained=True, spindle=False, timestep="token"),
    Row("pretrained-mutual-none", pretrained=True, spindle=False, timestep="none", headline=True),
    Row("pretrained-spindle-none", pretrained=True, spindle=True, timestep="none", headline=True),
    Row("pretrained-spindle-none-mdlm", True, spindle=True, timestep="none", objective="mdlm"),
)
PAPER_PPL = {
    "scratch-mutual-layerwise": 82.34,
    "scratch-spindle-layerwise": 77.50,
    "pretrained-mutual-layerwise": 92.53,
    "pretrained-mutual-token": 79.95,
    "pretrained-mutual-none": 78.76,
    "pretrained-spindle-none": 63.78,
}
