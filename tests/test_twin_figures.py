"""The twin study's figures in docs/baselines.md and the README are its committed results':
the tables, samples, intervals, frontier and reproduction check are recomputed here."""

from __future__ import annotations

import re
from pathlib import Path

from common.files import read_json

REPO = Path(__file__).resolve().parents[1]
GRID = REPO / "experiments/ablation/results"
FLAT = " ".join((REPO / "README.md").read_text().split())


def test_the_twin_pages_figures_and_samples_are_the_studys(tmp_path):
    """docs/baselines.md's measured tables, its over-seeds interval and its ten samples of each
    model are those of the study's summary.md, which today's code writes again unchanged from
    the committed results folder."""
    import shutil

    from experiments.ar_twin.summary import write_summary

    results = REPO / "experiments/ar_twin/results"
    copy = shutil.copytree(results, tmp_path / "results")
    summary = (results / "summary.md").read_text()
    assert (
        write_summary(copy).split("\n", 3)[3] == summary.split("\n", 3)[3]
    )  # the machine line aside
    page = (REPO / "docs/baselines.md").read_text()
    measured = page[page.index("### Measured so far") :]
    for block in summary.split("\n\n"):
        if block.startswith(("| pair |", "- ")):  # the tables and the ten samples of each model
            assert block.strip() in measured, block[:80]
    over = re.search(r"Over \d seeds [^:]*: ([+-]\d\.\d{3}) nats/word, 95% (\[[^]]+\])", summary)
    assert f"{over.group(1)} nats/word, 95% {over.group(2)}" in " ".join(measured.split())
    assert f"{over.group(1)} {over.group(2)} over the three seeds" in FLAT  # the README's
    gen_ppl = {kind: [read_json(path)["gen_ppl"] for path in
                      sorted((results / "samples").glob(f"{kind}-seed*-600.metrics.json"))]
               for kind in ("diffusion", "ar")}  # fmt: skip
    spans = [f"{min(v):.0f}–{max(v):.0f}" for v in gen_ppl.values()]
    assert f"generative perplexity is {spans[0]} against the twin's {spans[1]}" in FLAT


def test_the_results_pages_recipe_command_prints_the_summarys_figure(capsys):
    """The command docs/results.md gives for recomputing a recipe-level figure from the
    committed per-sentence files runs as written and prints the summary's interval."""
    import os
    import shlex

    from evaluation import recipes

    page = (REPO / "docs/results.md").read_text()
    block = page[page.index("S=experiments/ablation/results/sentences") :].split("```")[0]
    command = " ".join(block.replace("\\\n", " ").split("\n")[1:])
    argv = shlex.split(command.replace("$S", "experiments/ablation/results/sentences"))
    assert argv[:3] == ["python3", "-m", "evaluation.recipes"]
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        result = recipes.main(argv[3:])
    finally:
        os.chdir(cwd)
    low, high = result["per_word"]["interval"]
    pair = "- pretrained-mutual-layerwise vs pretrained-mutual-none"
    line = next(x for x in (GRID / "summary.md").read_text().splitlines() if x.startswith(pair))
    figure = f"{result['per_word']['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"
    assert f"recipe level (3 seeds, continuous, 1702 sentences): {figure}" in line
    assert "verdict at the recipe level" in capsys.readouterr().out


def test_the_twin_pages_frontier_and_reproduction_figures_are_the_records():
    """docs/baselines.md's frontier comparison at equal entropy and its check that seed 1,
    retrained on another CPU, gives the grid's bound, recomputed from the committed files."""
    from evaluation.compare import compare

    results = REPO / "experiments/ar_twin/results"
    flat = " ".join((REPO / "docs/baselines.md").read_text().split())
    points = read_json(results / "results.json")["frontier"]
    for ar, diffusion in ((("ar", 0.7, 1.0, None), ("diffusion", 0.7, 1.0, 32)),
                          (("ar", 1.0, 0.9, None), ("diffusion", 1.0, 1.0, 32))):  # fmt: skip
        setting = {(p["model"], p["temperature"], p["topp"], p["sample_steps"]): p for p in points}
        a, d = setting[ar], setting[diffusion]
        assert abs(a["unigram_entropy_nats"] - d["unigram_entropy_nats"]) < 0.01  # equal entropy
        assert (f"{d['unigram_entropy_nats']:.2f} nats: {a['gen_ppl']:.1f} against "
                f"{d['gen_ppl']:.1f}") in flat  # fmt: skip
        assert 4 <= d["gen_ppl"] / a["gen_ppl"] <= 6.5  # "4–6 × lower"
    retrained = str(results / "records/diffusion-seed1-600.json")
    grid = str(GRID / "sentences/pretrained-spindle-none-seed1.json")
    (pair,) = compare([retrained, grid], bound="continuous")
    assert abs(pair["per_word"]["difference"]) < 1e-4 and "within 0.0001 nats/word" in flat
    a, b = (read_json(path) for path in (retrained, grid))
    gaps = [x - y for x, y in zip(a["sentences"]["nats"], b["continuous"]["sentences"]["nats"],
                                  strict=True)]  # fmt: skip
    assert 0 < max(map(abs, gaps)) <= 0.09 and "differ by at most 0.09 nats" in flat
