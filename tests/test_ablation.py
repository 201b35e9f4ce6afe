"""The ablation grid (python3 -m experiments.ablation): a two-row, few-step version runs end
to end, writes one JSON line per run with every figure, draws what it wrote, and a rerun skips
finished runs."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from transformers import BertConfig, BertForMaskedLM

from corpora import toy
from evaluation.recipes import recipe_difference
from evaluation.stats import seeds_needed
from experiments.ablation import pairs as ablation_pairs
from experiments.ablation import plots as ablation_plots
from experiments.ablation import rows as ablation_rows
from experiments.ablation import run as ablation
from experiments.ablation import table as ablation_table
from experiments.ablation.calls import Stopped

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory, tokenizer):
    """A 2-layer BERT with weights (the rows start from it or from its config)."""
    path = tmp_path_factory.mktemp("tiny-pretrained")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)  # fmt: skip
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_two_rows_run_end_to_end_and_resume(tiny_pretrained, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for split, n in (("train", 120), ("test", 12)):
        (data / f"{split}.txt").write_text("\n".join(toy.sample(n, seed=n)) + "\n")
    rows = "scratch-mutual-layerwise,pretrained-spindle-none"
    argv = [
        "--model_name_or_path", str(tiny_pretrained), "--dataset", str(data), "--rows", rows,
        "--seeds", "1", "--headline_seeds", "1", "--dev_size", "8", "--max_steps", "2",
        "--eval_steps", "1",
        "--batch_size", "4",
        "--max_length", "24", "--num_steps", "64", "--eval_step_size", "16",
        "--mc_samples", "1", "--eval_examples", "8", "--discrete_examples", "8",
        "--num_samples", "4",
        "--sample_steps", "8", "--table3_steps", "2,4", "--device", "cpu",
        "--output", str(tmp_path / "results"), "--runs_dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    ablation.main(argv)
    results = tmp_path / "results" / "results.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["row"] for r in records] == rows.split(",")
    for record in records:
        for kind in ("discrete", "continuous"):
            figures = record[kind]
            assert figures["ppl_per_word"] > 1 and figures["nats_per_token_se"] >= 0
        assert set(record["samples"]) == {"bleu", "self_bleu", "dist_1", "div_4"}
        assert [step for step, _ in record["dev_curve"]] == [1, 2]
        assert record["budget"]["steps"] == 2 and record["wall_time_s"] > 0
        run_args = tmp_path / "runs" / f"{record['row']}-seed1" / "best" / "training_args.json"
        assert record["precision"] == json.loads(run_args.read_text())["resolved"]["precision"]
        assert record["precision"] == "fp32" and " cores, " in record["machine"]
        assert json.loads(run_args.read_text())["args"]["bf16"] is False
    discrete = json.loads((tmp_path / "runs" / "pretrained-spindle-none-seed1" /
                           "elbo_discrete16.json").read_text())  # fmt: skip
    assert records[1]["discrete"]["ppl_per_word"] == discrete["given_length"]["ppl_per_word"]
    assert set(records[1]["table3"]) == {"2", "4"}
    drawn = json.loads((tmp_path / "results" / "pictures.json").read_text())
    line = drawn["dev_curves.png"]["scratch-mutual-layerwise"]  # one seed: its own curve
    assert [[s, v] for s, v in zip(line["steps"], line["mean"], strict=True)] == records[0][
        "dev_curve"] and line["low"] == line["high"] == line["mean"]  # fmt: skip
    assert drawn["table3.png"] == {k: v["ppl_per_word"] for k, v in records[1]["table3"].items()}
    assert (tmp_path / "results" / "dev_curves.png").stat().st_size > 1000
    summary = (tmp_path / "results" / "summary.md").read_text()
    assert summary == ablation_table.summary(records, tmp_path / "results")
    assert "| pretrained-spindle-none | 1 |" in summary
    sentences = json.loads((tmp_path / "results" / records[1]["sentences_file"]).read_text())
    assert set(sentences) == {"discrete", "continuous"}
    assert len(sentences["discrete"]["sentences"]["id"]) == 8
    assert sentences["continuous"]["noise"]["estimator"] == "conditioned"
    for kind in ("discrete", "continuous"):
        assert sentences[kind]["noise"]["seed"] == records[1]["noise_seed"] == 1
    assert records[1]["data_seed"] == 42
    run_args = tmp_path / "runs" / "pretrained-spindle-none-seed1" / "best" / "training_args.json"
    assert json.loads(run_args.read_text())["args"]["data_seed"] == 42
    assert "checkpoint level (discrete, 8 sentences):" in summary
    assert "Checkpoint level (first seeds): " in summary
    assert "recipe level: none (a row with one seed is one checkpoint)" in summary

    ablation.main(argv)
    assert "done already, skipped" in capsys.readouterr().out
    assert len(results.read_text().splitlines()) == 2


def test_a_grid_refuses_to_mix_precisions_in_one_results_file(tmp_path):
    results = tmp_path / "results.jsonl"
    ablation.check_precision(results, "bf16")  # no results yet: anything goes
    lines = [{"row": "a", "seed": 1, "precision": "fp32"}, {"row": "b", "seed": 1}]
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    ablation.check_precision(results, "fp32")
    with pytest.raises(ablation.UsageError, match=r"holds runs trained in fp32.*--no-bf16"):
        ablation.check_precision(results, "bf16")
    results.write_text(json.dumps({"row": "a", "seed": 1, "precision": "bf16"}) + "\n")
    with pytest.raises(ablation.UsageError, match=r"in bf16; this machine would train in fp32; "
                       r"pass --bf16 \(on a machine that computes bf16 natively\)"):  # fmt: skip
        ablation.check_precision(results, "fp32")


def test_the_plan_runs_seed_by_seed_with_more_seeds_for_the_headline_pair():
    runs = ablation.plan(list(ablation.GRID), [1, 2, 3], [1, 2, 3, 4, 5])
    named = [(row.name, seed) for row, seed in runs]
    assert len(named) == len(set(named)) == 4 * 3 + 2 * 5 + 1
    first_round = {name for name, seed in named[:6]}
    assert first_round == set(ablation.PAPER_PPL) and {s for _, s in named[:6]} == {1}
    assert named[-1] == ("pretrained-spindle-none-mdlm", 1)
    assert [s for name, s in named if name == "pretrained-spindle-none"] == [1, 2, 3, 4, 5]
    assert [s for name, s in named if name == "scratch-mutual-layerwise"] == [1, 2, 3]
    assert ablation.noise_seed(4) != ablation.noise_seed(5)


def test_the_grid_is_the_papers_rows_plus_one():
    names = [row.name for row in ablation.GRID]
    assert set(ablation.PAPER_PPL) < set(names) and len(names) == len(ablation.PAPER_PPL) + 1
    assert {row.name for row in ablation.GRID if row.headline} == {
        "pretrained-mutual-none", "pretrained-spindle-none"}  # fmt: skip
    assert ablation_plots.table3([], Path("unused.png")) == {}


def _record(row: str, seed: int, nats_per_word: float, dev: list[float], paper=None) -> dict:
    figures = {"nats_per_word": nats_per_word, "nats_per_word_se": 0.1,
               "nats_per_token": nats_per_word / 2, "nats_per_token_se": 0.05}  # fmt: skip
    samples = {"bleu": 0.1, "self_bleu": 0.2, "dist_1": 0.3, "div_4": 0.4}
    return {"row": row, "seed": seed, "paper_ppl_per_word": paper, "discrete": figures,
            "continuous": {**figures, "nats_per_word": nats_per_word + 1}, "samples": samples,
            "dev_curve": [[50 * (i + 1), v] for i, v in enumerate(dev)]}  # fmt: skip


def test_the_summary_checks_the_papers_orderings_seeds_and_dev_stability():
    records = [
        # the paper: a (63.78) < b (78.76) < c (92.53); ours: b < a < c
        _record("a", 1, 4.0, [9.0, 5.0, 4.0], paper=63.78),  # printed as 63.78
        _record("a", 2, 4.4, [9.0, 2.0, 4.2], paper=63.78),  # dev orders use the first seed
        _record("b", 1, 3.9, [9.0, 4.0, 4.5], paper=78.76),
        _record("b", 2, 4.3, [9.0, 4.0, 4.5], paper=78.76),
        _record("c", 1, 6.0, [9.5, 6.0, 6.0], paper=92.53),
        _record("d", 1, 5.0, [9.5, 7.0, 5.5]),
    ]
    rows = ablation_rows.by_row(records)
    pairs = {p["pair"]: p for p in ablation_pairs.paper_pairs(rows)}
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}  # d has no paper number
    assert not pairs["a", "b"]["agrees"] and pairs["a", "c"]["agrees"] and pairs["b", "c"]["agrees"]
    assert pairs["a", "b"]["ours"] == pytest.approx(0.1)
    assert pairs["a", "c"]["margin_se"] == pytest.approx(1.8 / (0.1 * 2**0.5))
    steps, orders = ablation_pairs.dev_orderings(rows)
    assert steps == [100, 150] and orders == [["b", "a", "c", "d"], ["a", "b", "d", "c"]]
    records[4]["table3"] = {"32": {"ppl_per_word": 1200.4}, "16": {"ppl_per_word": 1500.0}}
    text = ablation_table.summary(records)
    assert "c seed 1: per-word PPL bound at 16 ELBO steps 1,500, 32 ELBO steps 1,200." in text
    assert "Recipe level: 0 confirmed, 0 reversed, 0 undecided of 0 pairs; 3 pairs" in text
    assert "ordered the same way" not in text  # no count mixing means over seeds with one seed
    assert "a 4.000–4.400, b 3.900–4.300" in text and "the seed ranges overlap" in text
    assert "Pairs that swapped between the two: 2 (b / a; c / d)." in text
    assert f"| a | 2 | {math.exp(4.2):,.0f} (4.200 ± 0.100) |" in text
    assert "| 0.100 | 0.200 | 0.300 | 0.400 | 63.78 |" in text and "| 0.400 | — |" in text
    apart = [_record("a", s, 4.0 + s / 100, [5.0, 4.0]) for s in (1, 2)]
    apart += [_record("b", s, 5.0 + s / 100, [5.0, 4.0]) for s in (1, 2)]
    assert "the seed ranges do not overlap" in ablation_table.summary(apart)


def _paired_runs(tmp_path, shifts: dict[str, float]) -> list[dict]:
    """Runs whose first seeds have per-sentence files: row r's sentence i scores
    base_i + shifts[r] (+ a small alternating wobble, so the paired s.e. is not 0)."""
    base = [30.0, 41.0, 25.0, 52.0, 38.0, 33.0, 47.0, 29.0]
    runs = []
    for row, shift in shifts.items():
        nats = [x + shift + (0.05 if i % 2 else -0.05) * (row == "b") for i, x in enumerate(base)]
        stored = {"discrete": {"dataset": "d", "split": "test", "bound": "discrete",
                               "protocol": "exact", "num_steps": 64, "eval_step_size": 16,
                               "noise": {"seed": 0}, "given_length": {},
                               "sentences": {"id": [f"{i}:x" for i in range(8)],
                                             "tokens": [10] * 8, "words": [8] * 8,
                                             "nats": nats}}}  # fmt: skip
        (tmp_path / "sentences").mkdir(exist_ok=True)
        (tmp_path / "sentences" / f"{row}.json").write_text(json.dumps(stored))
        paper = {"a": 63.78, "b": 78.76, "c": 92.53}[row]
        record = _record(row, 1, sum(nats) / 64, [5.0, 4.0], paper=paper)
        runs.append({**record, "sentences_file": f"sentences/{row}.json"})
    return runs


def test_paired_intervals_label_the_papers_orderings(tmp_path):
    """The paper: a < b < c. Ours: a 0.5 nats per sentence below b (confirmed, though the
    sentences spread by ±10 nats: only the pairing decides it), c below both (reversed); then
    a 0.01 below b, within the wobble (undecided)."""
    records = _paired_runs(tmp_path, {"a": 0.0, "b": 0.5, "c": -1.0})
    pairs = {p["pair"]: p for p in ablation_pairs.paper_pairs(ablation_rows.by_row(records),
                                                               tmp_path)}  # fmt: skip
    assert pairs["a", "b"]["paired"]["label"] == "confirmed"
    assert pairs["b", "c"]["paired"]["label"] == "reversed"
    assert pairs["a", "c"]["paired"]["label"] == "reversed"
    assert pairs["a", "b"]["paired"]["difference"] == pytest.approx(-0.5 / 8)
    assert pairs["a", "b"]["paired"]["unpaired_se"] > 50 * pairs["a", "b"]["paired"]["paired_se"]
    text = ablation_table.summary(records, tmp_path)
    assert "1 confirmed, 2 reversed, 0 undecided of 3 pairs" in text
    noisy = _paired_runs(tmp_path, {"a": 0.0, "b": 0.01, "c": 1.0})
    pairs = {p["pair"]: p for p in ablation_pairs.paper_pairs(ablation_rows.by_row(noisy),
                                                               tmp_path)}  # fmt: skip
    assert pairs["a", "b"]["paired"]["label"] == "undecided"
    assert ablation_pairs.label(-1.0, [-0.3, -0.1]) == "confirmed"
    assert ablation_pairs.label(-1.0, [0.1, 0.3]) == "reversed"
    assert ablation_pairs.label(1.0, [0.1, 0.3]) == "confirmed"
    assert "paired" not in ablation_pairs.paper_pairs(ablation_rows.by_row(noisy))[0]


def test_the_bound_with_more_sentences_pairs_and_rows_with_seeds_compare_as_recipes(tmp_path):
    """Continuous records on 12 sentences beat discrete ones on 8; two headline rows with
    seeds 1–3 give three per-seed paired differences and a recipe-level interval
    (evaluation.recipes) over seeds and sentences."""
    base = [30.0, 41.0, 25.0, 52.0, 38.0, 33.0, 47.0, 29.0, 35.0, 44.0, 31.0, 40.0]
    folder = tmp_path / "sentences"
    folder.mkdir()
    runs = []
    for row, shift in (("a", 0.0), ("b", 0.6)):
        for seed, wobble in ((1, 0.0), (2, 0.2), (3, -0.1)):

            def record(bound, n, row=row, wobble=wobble, shift=shift):
                nats = [x + shift + wobble * (row == "b") + 0.01 * (i % 3) * (row == "a")
                        for i, x in enumerate(base[:n])]  # fmt: skip
                return {"dataset": "d", "split": "test", "bound": bound, "protocol": "exact",
                        "num_steps": 64, "eval_step_size": 16 if bound == "discrete" else None,
                        "noise": {"seed": 0}, "given_length": {},
                        "sentences": {"id": [f"{i}:x" for i in range(n)], "tokens": [10] * n,
                                      "words": [8] * n, "nats": nats}}  # fmt: skip

            name = f"{row}-seed{seed}.json"
            (folder / name).write_text(
                json.dumps(
                    {"discrete": record("discrete", 8), "continuous": record("continuous", 12)}
                )
            )
            paper = {"a": 63.78, "b": 78.76}[row]
            runs.append({**_record(row, seed, 4.0 + shift, [5.0, 4.0], paper=paper),
                         "sentences_file": f"sentences/{name}",
                         "settings": {"headline": True}})  # fmt: skip
    rows = ablation_rows.by_row(runs)
    (pair,) = ablation_pairs.paper_pairs(rows, tmp_path)
    assert pair["paired"]["bound"] == "continuous" and pair["paired"]["sentences"] == 12
    q = pair["recipe"]
    assert q["seeds"] == [1, 2, 3] and q["bound"] == "continuous" and q["shared_noise"]
    offsets = [0.01 * (i % 3) for i in range(12)]
    expected = [(sum(offsets) / 12 - 0.6 - w) * 12 / 96 for w in (0.0, 0.2, -0.1)]
    assert q["per_pair"] == pytest.approx(expected)
    nats_a = [[x + 0.01 * (i % 3) for i, x in enumerate(base)]] * 3
    nats_b = [[x + 0.6 + w for x in base] for w in (0.0, 0.2, -0.1)]
    by_hand = recipe_difference(np.array(nats_a), np.array(nats_b), np.full(12, 8.0), True)
    assert q["interval"] == pytest.approx(by_hand["interval"])
    assert q["label"] == "confirmed"  # the paper and ours put a lower
    text = ablation_table.summary(runs, tmp_path)
    assert "recipe level (3 seeds, continuous, 12 sentences)" in text
    assert "Recipe level: 1 confirmed, 0 reversed, 0 undecided of 1 pairs." in text
    half = (q["interval"][1] - q["interval"][0]) / 2
    needed = seeds_needed(q, 12, 0.04)
    assert (f"Headline pair (a vs b): recipe-level half-width {half:.3f} nats/word with 3 seeds"
            in text) and (f"±0.04 needs {needed} seeds." in text)  # fmt: skip


def test_the_grids_errors_and_stops_have_the_documented_statuses(monkeypatch, capsys, tmp_path):
    import signal

    folders = ["--output", str(tmp_path / "r"), "--runs_dir", str(tmp_path / "x")]
    cases = ((["--seeds", "²"], "--seeds '²'"), (["--headline_seeds", "1,1"], "--headline_seeds"),
             (["--rows", "nope"], "--rows: unknown"))  # fmt: skip
    for argv, needle in cases:
        with pytest.raises(SystemExit) as exit_info:
            ablation.main([*argv, *folders])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and needle in err and err.count("\n") == 1, err

    def stopped(args):
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(ablation, "grid", stopped)
    with pytest.raises(SystemExit) as exit_info:
        ablation.main([])
    assert exit_info.value.code == 143 and "stopped by SIGTERM" in capsys.readouterr().err


def test_a_torn_file_in_a_run_folder_is_one_line_naming_it(tmp_path):
    from common.errors import UsageError

    best = tmp_path / "best"
    best.mkdir()
    (best / "training_args.json").write_text('{"resolved": {"precis')
    with pytest.raises(UsageError, match=r"training_args\.json: not complete JSON"):
        ablation.trained_precision(tmp_path)


def test_later_seeds_without_checkpoint_figures_summarise(tmp_path):
    """With --checkpoint_figures first only a row's first seed carries the discrete bound
    and the samples: the table's discrete and sample columns are those of the seeds that
    have them, the continuous column every seed's."""
    first = _record("a", 1, 4.0, [5.0, 4.0], paper=63.78)
    later = _record("a", 2, 4.4, [5.0, 4.2], paper=63.78)
    del later["discrete"], later["samples"]
    other = _record("b", 1, 3.9, [5.0, 4.1], paper=78.76)
    rows = ablation_rows.by_row([first, later, other])
    assert ablation_rows.mean_nats_per_word(rows["a"]) == pytest.approx(4.0)
    assert ablation_rows.mean_nats_per_word(rows["a"], "continuous") == pytest.approx(5.2)
    text = ablation_table.summary([first, later, other])
    seeds = "2 (discrete, samples: seed 1)"  # the cell names the seeds each figure averages
    assert f"| a | {seeds} | {math.exp(4.0):,.0f} (4.000 ± 0.100) |" in text
    assert "| b | 1 | " in text  # every seed has every figure: the count alone
    ablation_table.check_records([first, later, other], tmp_path / "results.jsonl")
    args = ablation.parse_args([])
    row = next(r for r in ablation.GRID if r.name == "pretrained-spindle-none")
    assert ablation.seeds_of(row, args) == list(range(1, 6)) and args.checkpoint_figures == "first"


def test_the_row_beyond_the_paper_is_set_against_its_paper_twin(tmp_path):
    """The mdlm row differs from pretrained-spindle-none in its objective alone: the summary
    pairs their first seeds sentence by sentence (row − twin, per word) with the interval
    evaluation.compare gives for the same two records."""
    from evaluation.compare import paired
    from experiments.ablation.notes import beyond_lines, paper_twin

    assert paper_twin("pretrained-spindle-none-mdlm") == "pretrained-spindle-none"
    assert paper_twin("pretrained-spindle-none") is None and paper_twin("nope") is None
    base = [30.0, 41.0, 25.0, 52.0, 38.0, 33.0, 47.0, 29.0]
    (tmp_path / "sentences").mkdir()
    runs, stored = [], {}
    for row, shift, paper in (("pretrained-spindle-none", 0.0, 63.78),
                              ("pretrained-spindle-none-mdlm", 0.4, None)):  # fmt: skip
        nats = [x + shift + (0.05 if i % 2 else -0.05) * (shift > 0) for i, x in enumerate(base)]
        stored[row] = {"dataset": "d", "split": "test", "bound": "continuous",
                       "protocol": "exact", "num_steps": 64, "eval_step_size": None,
                       "noise": {"seed": 1}, "given_length": {},
                       "sentences": {"id": [f"{i}:x" for i in range(8)], "tokens": [10] * 8,
                                     "words": [8] * 8, "nats": nats}}  # fmt: skip
        path = tmp_path / "sentences" / f"{row}.json"
        path.write_text(json.dumps({"continuous": stored[row]}))
        record = _record(row, 1, sum(nats) / 64, [5.0, 4.0], paper=paper)
        runs.append({**record, "sentences_file": f"sentences/{row}.json"})
    rows = ablation_rows.by_row(runs)
    (line,) = [x for x in beyond_lines(rows, tmp_path) if x]
    mine = paired(stored["pretrained-spindle-none-mdlm"], stored["pretrained-spindle-none"])
    low, high = mine["per_word"]["interval"]
    assert mine["per_word"]["difference"] == pytest.approx(0.4 / 8)
    assert line.startswith("Beyond the paper, pretrained-spindle-none-mdlm − pretrained-")
    assert line.endswith(f": +0.050 [{low:+.3f}, {high:+.3f}] nats/word.") and low < 0.05 < high
    assert beyond_lines(rows, None) == [] and line in ablation_table.summary(runs, tmp_path)
