"""The README's result figures are the committed results': each cell of its ablation table and
its headline sentences are recomputed here from the files they come from, so that a rerun
grid or an edited sentence cannot leave the README quoting numbers nobody can trace."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

from common.files import read_jsonl
from experiments.ablation.rows import by_row, mean_nats_per_word, run_se

REPO = Path(__file__).resolve().parents[1]
GRID = REPO / "experiments/ablation/results/bf16-600-shared-noise"
README = (REPO / "README.md").read_text()


def table_rows(text: str, header: str) -> dict[str, list[str]]:
    """The cells of the Markdown table that follows ``header``, by the first column."""
    blocks = text[text.index(header) :].split("\n\n")
    block = next(b for b in blocks if b.startswith("| row |"))
    rows = [line.strip("|").split("|") for line in block.splitlines()[2:]]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def summary_row(folder: Path, row: str) -> list[str]:
    return table_rows((folder / "summary.md").read_text(), "Mean over seeds")[row]


README_TABLE = table_rows(README, "### The paper's ablation at small scale")


@pytest.mark.parametrize("row", list(README_TABLE))
def test_each_cell_of_the_readmes_ablation_table_is_the_committed_grids(row):
    seeds, discrete, continuous, steps300, bleu, paper = README_TABLE[row]
    mine = summary_row(GRID, row)
    assert (seeds, discrete, bleu, paper) == (mine[0], mine[1], mine[4], mine[8])
    runs = by_row(read_jsonl(GRID / "results.jsonl"))[row]
    se = statistics.fmean(run_se(run, GRID, "continuous") for run in runs)
    assert continuous == f"{mean_nats_per_word(runs, 'continuous'):.3f} ± {se:.3f}"
    older = summary_row(GRID / "steps300", row)[1]  # "10,789 (9.286 ± 0.284)"
    assert re.search(r"\((\d+\.\d+) ±", older).group(1) == steps300


def test_the_readmes_verdicts_are_the_summarys():
    summary = (GRID / "summary.md").read_text()
    assert "Checkpoint level (first seeds): 7 confirmed, 7 reversed, 1 undecided" in summary
    assert "**7 confirmed, 7 reversed, 1 undecided**" in README
    headline = "recipe level (5 seeds, continuous, 512 sentences): +0.073 [-0.014, +0.160]"
    assert headline in summary
    assert "+0.073 [−0.014, +0.160] nats/word:\n  **undecided**" in README
