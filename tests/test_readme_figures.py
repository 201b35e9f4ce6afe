"""The README's result figures are the committed results': each cell of its ablation table and
its headline sentences are recomputed here from the files they come from, so that a rerun
grid or an edited sentence cannot leave the README quoting numbers nobody can trace."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pytest

from common.files import read_jsonl
from experiments.ablation.rows import by_row, mean_nats_per_word, run_se

REPO = Path(__file__).resolve().parents[1]
GRID = REPO / "experiments/ablation/results"
EARLIER = GRID / "bf16-600-shared-noise"
README = (REPO / "README.md").read_text()
FLAT = " ".join(README.split())


def table_rows(text: str, header: str) -> dict[str, list[str]]:
    """The cells of the Markdown table that follows ``header``, by the first column."""
    blocks = text[text.index(header) :].split("\n\n")
    block = next(b for b in blocks if b.startswith("| row |"))
    rows = [line.strip("|").split("|") for line in block.splitlines()[2:]]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def summary_row(folder: Path, row: str) -> list[str]:
    return table_rows((folder / "summary.md").read_text(), "Mean over")[row]


README_TABLE = table_rows(README, "### The paper's ablation at small scale")


@pytest.mark.parametrize("row", list(README_TABLE))
def test_each_cell_of_the_readmes_ablation_table_is_the_committed_grids(row):
    seeds, continuous, discrete, bleu, paper = README_TABLE[row]
    mine = summary_row(GRID, row)  # "3 (discrete, samples: seed 1)", "10,466 (9.256 ± 0.211)"
    assert (seeds, discrete, bleu, paper) == (mine[0].split()[0], mine[1], mine[4], mine[8])
    assert "(discrete, samples: seed 1)" in mine[0] or seeds == "1"
    runs = by_row(read_jsonl(GRID / "results.jsonl"))[row]
    mean = mean_nats_per_word(runs, "continuous")
    se = statistics.fmean(run_se(run, GRID, "continuous") for run in runs)
    assert continuous == f"{mean:.3f} ± {se:.3f} ({math.exp(mean):,.0f})"
    assert mine[2] == f"{math.exp(mean):,.0f}"


def level_counts(text: str, level: str) -> str:
    found = re.search(level + r": (\d+ confirmed, \d+ reversed, \d+ undecided) of 15 pairs", text)
    return found.group(1)


def test_the_readmes_verdicts_are_the_summarys():
    """The counts at both levels, the interval quoted for a time-design pair and the earlier
    grid's headline are the summaries'."""
    summary = (GRID / "summary.md").read_text()
    recipe, checkpoint = (
        level_counts(summary, "Recipe level"),
        level_counts(summary, r"\(first seeds\)"),
    )
    assert f"`evaluation.recipes`): **{recipe}**" in FLAT
    assert f"not which recipe): **{checkpoint}**" in FLAT
    pair = "- pretrained-mutual-layerwise vs pretrained-mutual-none"
    line = next(x for x in summary.splitlines() if x.startswith(pair))
    assert "recipe level (3 seeds, continuous, 1702 sentences): +0.044 [+0.030, +0.058]" in line
    assert "time-agnostic beats layer-wise (+0.044 [+0.030, +0.058] nats/word)" in FLAT
    earlier = (EARLIER / "summary.md").read_text()
    assert "recipe level (5 seeds, continuous, 512 sentences): +0.073 [-0.014, +0.160]" in earlier
    assert "that grid gave +0.073 [−0.014, +0.160]" in FLAT


def last_line(name: str, **match) -> dict:
    rows = read_jsonl(REPO / "bench/results" / name)
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())][-1]


def test_the_readmes_paired_example_is_what_compare_prints_on_the_committed_records(capsys):
    from evaluation.compare import main

    files = ["experiments/results/ema/seed1/no_ema_elbo_continuous.json",
             "experiments/results/ema/seed1/ema0.99_elbo_continuous.json"]  # fmt: skip
    main([str(REPO / f) for f in files])
    printed = capsys.readouterr().out.splitlines()
    command = f"python3 -m evaluation.compare {files[0]} \\\n    {files[1]}"
    after = README[README.index(command) :].split("```\n```\n", 1)[1]
    shown = after[: after.index("```")].splitlines()
    assert len(shown) == 4 and all(line in printed for line in shown)
    ratio = re.search(r"unpaired s.e. [\d.]+ \(([\d.]+)× paired\)", shown[1]).group(1)
    assert f"paired ({ratio} × smaller here" in FLAT


def test_the_toy_likelihood_figures_are_the_demo_record_and_the_grammar(tokenizer):
    from corpora import toy

    record = json.loads((REPO / "bench/results/cpu_demo_bound.json").read_text())
    sentences = toy.split("validation")[:256]
    predicted = sum(len(tokenizer(s)["input_ids"]) - 2 for s in sentences)  # no [CLS], [SEP]
    truth = sum(toy.sentence_nll(sentences)) / predicted
    assert (f"(demo checkpoint, 256 validation sentences): "
            f"{record['full_sequence_nats_per_token']:.2f} nats per token for the full-sequence "
            f"bound against a true NLL of {truth:.2f}") in FLAT  # fmt: skip


def test_the_twins_speed_figures_are_the_benchmarks():
    run = last_line("autoregressive.jsonl")
    machine = run["machine"].split(",")[0]
    assert (f"its step is {run['training']['ar_over_plain']:.2f} × a plain masked-LM step and "
            f"cached sampling {run['sampling']['cache_speedup']:.1f} × uncached "
            f"({run['num_samples']} samples of {run['sample_length']} tokens; {machine}, "
            f"{run['precision']}, {run['date'][:10]})") in FLAT  # fmt: skip


def test_the_padding_figures_are_the_benchmarks():
    run = last_line("padding.jsonl", dataset="wiki-summaries")
    padding = f"from {run['ungrouped']['padding']:.0%} to {run['grouped']['padding']:.1%}"
    assert f"cuts the padding the network computes on wiki-summaries (32 × 32) {padding}" in FLAT
    assert f"trains {run['speedup']:.2f} × faster in real tokens per second" in FLAT


def test_the_ema_measurements_figures_are_its_records():
    """experiments/results/ema/README.md: each seed's paired row and the recipe-level line are
    what evaluation.compare and evaluation.recipes give on the committed records."""
    from evaluation.compare import paired
    from evaluation.recipes import compare_recipes

    folder = REPO / "experiments/results/ema"
    text = " ".join((folder / "README.md").read_text().split())
    seeds = sorted(int(p.name[4:]) for p in folder.glob("seed*") if (p / "compare.json").is_file())
    assert len(seeds) >= 2
    pairs = {s: [folder / f"seed{s}" / f"{k}_elbo_continuous.json" for k in ("no_ema", "ema0.99")]
             for s in seeds}  # fmt: skip
    for seed, files in pairs.items():
        a, b = (json.loads(f.read_text()) for f in files)
        w = paired(a, b)["per_word"]
        low, high = w["interval"]
        row = (f"| {seed} | {w['a']:.4f} | {w['b']:.4f} | {w['difference']:+.4f} "
               f"[{low:+.4f}, {high:+.4f}] |")  # fmt: skip
        assert row in text, row
    recipe = compare_recipes([str(f[0]) for f in pairs.values()],
                             [str(f[1]) for f in pairs.values()])["per_word"]  # fmt: skip
    low, high = recipe["interval"]
    line = (f"recipe level ({len(seeds)} seeds): {recipe['difference']:+.4f} [{low:+.4f}, "
            f"{high:+.4f}] nats/word")  # fmt: skip
    assert line in text, line


def test_the_readmes_grid_progress_is_the_committed_grids():
    """The committed grid holds exactly the runs of the grid's default plan, the README says it
    is complete, summary.md is current and the README quotes its headline interval."""
    from experiments.ablation.grid import GRID as ROWS
    from experiments.ablation.run import plan
    from experiments.ablation.settings import parse_args, seed_list
    from experiments.ablation.table import earlier_grids, summary

    runs = read_jsonl(GRID / "results.jsonl")
    args = parse_args([])
    planned = plan(list(ROWS), seed_list(args.seeds), seed_list(args.headline_seeds))
    assert sorted((r["row"], r["seed"]) for r in runs) == sorted((r.name, k) for r, k in planned)
    assert f"the grid is complete, its {len(runs)} runs are in" in FLAT
    text = summary(runs, GRID, earlier_grids(GRID))
    assert (GRID / "summary.md").read_text() == text  # current: today's code, today's runs
    line = next(x for x in text.splitlines()
                if x.startswith("- pretrained-mutual-none vs pretrained-spindle-none"))  # fmt: skip
    found = re.search(r"recipe level \((\d+) seeds[^)]*\): ([+-]\d\.\d+) \[([+-]\d\.\d+), "
                      r"([+-]\d\.\d+)\]", line)  # fmt: skip
    seeds, diff, low, high = found.groups()
    assert int(seeds) == len(seed_list(args.headline_seeds))  # every headline seed is paired
    minus = str.maketrans("-", "−")
    assert (f"at {seeds} seeds (1,702 sentences, each seed's pair with its own noise seed) the "
            f"pair is {diff} [{low.translate(minus)}, {high}] nats/word") in FLAT  # fmt: skip


def test_the_results_pages_grid_figures_are_the_committed_grids():
    """docs/results.md's table of the recipe-level grid (every cell), its run count, its dev
    curves' last movement and its Table 3 analogue are recomputed from the committed grid."""
    page = (REPO / "docs/results.md").read_text()
    flat = " ".join(page.split())
    section = page[page.index("## The recipe-level grid") : page.index("### How many headline")]
    records = read_jsonl(GRID / "results.jsonl")
    rows = by_row(records)
    for row, cells in table_rows(section, "### Measured").items():
        mine = summary_row(GRID, row)
        mean = mean_nats_per_word(rows[row], "continuous")
        se = statistics.fmean(run_se(run, GRID, "continuous") for run in rows[row])
        assert cells[0] == mine[0].split()[0] and cells[2:] == [mine[1], *mine[3:]]
        assert cells[1] == f"{mean:.3f} ± {se:.3f} ({math.exp(mean):,.0f})"
    assert f"The grid is complete (2026-12-08): its {len(records)} runs are in" in flat
    moves = [dict(r["dev_curve"])[600] - dict(r["dev_curve"])[500] for r in records]
    assert max(moves) < 0  # every curve fell, as the page says
    assert (f"from step 500 to 600 the dev bounds of all {len(records)} runs fell by "
            f"{-max(moves):.3f} to {-min(moves):.3f} nats/token") in flat  # fmt: skip
    from experiments.ablation.pairs import recipe_level

    minus = str.maketrans("-", "−")
    headline = recipe_level(rows, "pretrained-mutual-none", "pretrained-spindle-none", GRID)
    low, high = headline["interval"]
    quoted = f"{headline['difference']:+.3f} [{low:+.3f}, {high:+.3f}]".translate(minus)
    assert f"is {quoted} nats/word at {len(headline['seeds'])} seeds" in flat
    per_seed = [f"{d:+.3f}".translate(minus) for d in headline["per_pair"]]
    assert f"Per seed: {', '.join(per_seed[:-1])} and {per_seed[-1]} nats/word" in flat
    assert f"Its half-width, {(high - low) / 2:.3f}," in flat
    beyond = next(x for x in (GRID / "summary.md").read_text().splitlines()
                  if x.startswith("Beyond the paper"))  # fmt: skip
    figure = re.search(r": (\+\d\.\d{3} \[\+\d\.\d{3}, \+\d\.\d{3}\]) nats/word", beyond)
    assert f"ends {figure.group(1)} nats/word above its `d3pm` twin" in flat
    assert f"ends {figure.group(1)} nats/word above its `d3pm` twin" in FLAT  # the README's
    from datetime import datetime

    spans = sorted((datetime.fromisoformat(r["date"]).timestamp() - r["wall_time_s"],
                    datetime.fromisoformat(r["date"]).timestamp()) for r in records)  # fmt: skip
    busy, (start, end) = 0.0, spans[0]
    for a, b in spans[1:]:
        if a > end:
            busy, start = busy + end - start, a
        end = max(end, b)
    busy += end - start
    total = sum(r["wall_time_s"] for r in records)
    assert f"{len(records)} runs, {total / 3600:.1f} hours of summed wall time" in flat
    assert f"busy with the grid for {busy / 3600:.1f} hours" in flat
    table3 = next(r["table3"] for r in records if "table3" in r)
    ppl = ", ".join(f"{math.exp(table3[s]['nats_per_word']):,.0f}" for s in ("16", "32", "64"))
    assert f"{ppl} and {math.exp(table3['128']['nats_per_word']):,.0f} per-word PPL" in flat
