"""Sections of a model card that come from what was measured on the folder: its test bounds
(``run["test"]``, added by ``python3 -m evaluation.card``) and the samples of the evaluation
that saved it (``run["samples"]``, ``training.dev.dev_samples``)."""

from __future__ import annotations

from typing import Any


def test_bounds(run: dict[str, Any]) -> str:
    """``run["test"]`` (summaries of compute_elbo.py records of this folder, as
    ``evaluation.card.summary`` writes them) as a card section, or "" when there are none."""
    rows = run.get("test") or []
    if not rows:
        return ""
    lines = ["## Test bounds", "",
             "Measured on this folder with `compute_elbo.py --json` (± one standard error over "
             "the sentences and their Monte Carlo draws; per token given the length, and of the "
             "whole sequence with its length):", "",
             "| data | bound | noise seed | sentences | nats/token given length | nats/token, "
             "full sequence | per-word PPL |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        given = row.get("given_length")
        shown = f"{given[0]:.4f} ± {given[1]:.4f}" if given else "—"
        full = f"{row['full_sequence'][0]:.4f} ± {row['full_sequence'][1]:.4f}"
        ppl = f"{row['ppl_per_word']:,.2f}" if row.get("ppl_per_word") is not None else "—"
        seed = "—" if row.get("noise_seed") is None else row["noise_seed"]
        lines.append(f"| {row['data']} | {row['bound']} | {seed} | {row['sentences']:,} | "
                     f"{shown} | {full} | {ppl} |")  # fmt: skip
    return "\n".join(lines)


def samples(run: dict[str, Any]) -> str:
    """The samples of the evaluation that wrote the folder (``run["samples"]``, from
    ``training.dev.dev_samples``) as a card section, or "" when there are none."""
    drawn = run.get("samples") or {}
    if not drawn.get("samples"):
        return ""
    how = drawn.get("sampler", "")
    if drawn.get("sample_steps"):
        how += f" sampler, {drawn['sample_steps']} steps"
    ppl = ""
    if drawn.get("gen_ppl") is not None:
        judge = (run.get("args") or {}).get("eval_gen_ppl_model")
        ppl = f" Their generative perplexity under `{judge}`: {drawn['gen_ppl']:.1f}."
    text = "\n".join(" ".join(s.split()) or "(empty)" for s in drawn["samples"])
    return (f"## Samples\n\n{len(drawn['samples'])} samples drawn at step {drawn.get('step')} "
            f"({how}; seeded by --data_seed, the same noise at every evaluation).{ppl} "
            f"`predict.py` draws more.\n\n```text\n{text}\n```")  # fmt: skip
