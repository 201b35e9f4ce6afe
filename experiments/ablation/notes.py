"""The ablation summary's closing lines: the rows beyond the paper against their paper twin,
the Table 3 analogue and the dev-bound order at the last two evaluations."""

from __future__ import annotations

import itertools
from pathlib import Path

from experiments.ablation.grid import GRID, PAPER_PPL
from experiments.ablation.pairs import dev_orderings, paired_figures
from experiments.ablation.rows import Rows, paired_bound, sentence_record


def paper_twin(name: str) -> str | None:
    """The paper row with the same initialisation, schedule and time design as the row beyond
    the paper ``name`` (which differs in its objective); None for a paper row."""
    row = next((r for r in GRID if r.name == name), None)
    if row is None or name in PAPER_PPL:
        return None
    same = (row.pretrained, row.spindle, row.timestep)
    return next((r.name for r in GRID if r.name in PAPER_PPL
                 and (r.pretrained, r.spindle, r.timestep) == same), None)  # fmt: skip


def beyond_lines(rows: Rows, folder: Path | None) -> list[str]:
    """Each row beyond the paper against its paper twin at the checkpoint level (first seeds,
    paired sentence by sentence): the difference row − twin per word and its 95% interval."""
    lines = []
    for name, runs in rows.items():
        twin = paper_twin(name)
        if twin not in rows or folder is None:
            continue
        bound = paired_bound(runs, folder)
        first = sentence_record(runs[0], folder, bound)
        second = sentence_record(rows[twin][0], folder, bound)
        if first is None or second is None:
            continue
        figures = paired_figures(first, second, name, twin, folder)
        low, high = figures["interval"]
        lines += ["", f"Beyond the paper, {name} − {twin} (checkpoint level: seeds "
                  f"{runs[0]['seed']} and {rows[twin][0]['seed']}, {bound} bound, "
                  f"{len(first['sentences']['id'])} sentences; the interval counts the sentences "
                  f"and draws, not seeds): {figures['difference']:+.3f} [{low:+.3f}, {high:+.3f}] "
                  "nats/word."]  # fmt: skip
    return lines


def table3_lines(records: list[dict]) -> list[str]:
    """The runs bounded at several numbers of ELBO steps (the paper's Table 3)."""
    lines = []
    for record in records:
        if "table3" in record:
            points = sorted(record["table3"].items(), key=lambda item: int(item[0]))
            lines += ["", f"Table 3 analogue, {record['row']} seed {record['seed']}: per-word PPL "
                      "bound at " + ", ".join(f"{k} ELBO steps {v['ppl_per_word']:,.0f}"
                                              for k, v in points) + "."]  # fmt: skip
    return lines


def dev_order_lines(rows: Rows) -> list[str]:
    """The rows ordered by their first seeds' dev bound at the last two evaluations."""
    steps, orders = dev_orderings(rows)
    if len(orders) != 2:
        return []
    moved = [
        (x, y)
        for x, y in itertools.combinations(orders[0], 2)
        if orders[1].index(x) > orders[1].index(y)
    ]
    return [
        "",
        f"Dev-bound order (first seeds) at step {steps[0]}: {' < '.join(orders[0])}.",
        f"At step {steps[1]}: {' < '.join(orders[1])}.",
        f"Pairs that swapped between the two: {len(moved)}"
        + (f" ({'; '.join(f'{x} / {y}' for x, y in moved)})." if moved else "."),
    ]
