"""Pictures of the ablation (bench/ablation.py): the dev bound against training steps for
every run, and the per-word perplexity bound against ELBO steps for the spindle row (the
paper's Table 3 analogue). Each function returns the numbers it drew."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from common.files import read_jsonl


def dev_curves(records: list[dict], out: Path) -> dict[str, list[list[float]]]:
    """Dev bound (nats per token) against steps, one line per run: a colour per row, a dash
    per seed. Returns {run: [[step, nats], ...]}."""
    drawn = {f"{r['row']} (seed {r['seed']})": r["dev_curve"] for r in records}
    rows = list(dict.fromkeys(r["row"] for r in records))
    seeds = list(dict.fromkeys(r["seed"] for r in records))
    colours, dashes = plt.get_cmap("tab10"), ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for record, (label, curve) in zip(records, drawn.items(), strict=True):
        ax.plot([s for s, _ in curve], [v for _, v in curve], marker="o", label=label,
                color=colours(rows.index(record["row"]) % 10),
                linestyle=dashes[seeds.index(record["seed"]) % len(dashes)])  # fmt: skip
    ax.set_xlabel("training step")
    ax.set_ylabel("dev bound (nats per token)")
    ax.set_title("Ablation: dev bound during training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return drawn


def table3(records: list[dict], out: Path) -> dict[int, float]:
    """Per-word PPL bound against the number of ELBO steps T/S (spindle row). Returns
    {steps: ppl}."""
    rows = [r for r in records if "table3" in r]
    if not rows:
        return {}
    drawn = {int(k): v["ppl_per_word"] for k, v in rows[0]["table3"].items()}
    fig, ax = plt.subplots(figsize=(5, 3.5))
    steps = sorted(drawn)
    ax.plot(steps, [drawn[s] for s in steps], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("ELBO steps T/S")
    ax.set_ylabel("per-word perplexity bound")
    ax.set_title(f"{rows[0]['row']}: bound against steps")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return drawn


def write_pictures(results: Path, output: Path) -> dict:
    """Both pictures from ``results`` into ``output``; returns what was drawn, by file."""
    records = read_jsonl(results)
    drawn = {"dev_curves.png": dev_curves(records, output / "dev_curves.png")}
    steps = table3(records, output / "table3.png")
    if steps:
        drawn["table3.png"] = steps
    return drawn
