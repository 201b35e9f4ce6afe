"""Pictures: each is written, and the data it draws is the data of its source file."""

from __future__ import annotations

import json

import pytest
import torch

from evaluation import figures as plots
from evaluation.bounds import Terms, sequence_bounds, summarise
from evaluation.plot_sources import loss_meaning
from models import load_checkpoint
from tests.enumeration import L, TinyNet, make_diffusion
from tests.test_cli import run_main


@pytest.mark.parametrize(("bound", "lam"), [("discrete", 0.3), ("continuous", 0.3),
                                            ("continuous", 0.0)])  # fmt: skip
def test_the_terms_add_up_to_the_bound(bound, lam):
    """The per-t export of compute_elbo.py --json splits the very draws that are totalled."""
    diffusion = make_diffusion(lam, 16)
    x0 = torch.tensor([[2, 0], [5, 1], [4, 4]]).repeat(20, 1)
    target = torch.ones_like(x0, dtype=torch.bool)
    target[::3, 1] = False
    terms = Terms()
    values, tokens = sequence_bounds(
        diffusion, TinyNet(), [(x0[:30], target[:30]), (x0[30:], target[30:])], bound, 2, 3,
        seed=0, terms=terms,
    )  # fmt: skip
    plain, _ = sequence_bounds(
        diffusion, TinyNet(), [(x0[:30], target[:30]), (x0[30:], target[30:])], bound, 2, 3,
        seed=0,
    )  # fmt: skip
    assert torch.equal(values, plain)
    figures = terms.figures(int(tokens.sum()))
    total = sum(figures["nats_per_token"]) + figures["reconstruction_nats_per_token"]
    assert total == pytest.approx(summarise(values, tokens)["nats_per_token"], rel=1e-9)
    assert len(figures["t_low"]) == len(figures["nats_per_token"]) == 16
    assert x0.shape[1] == L


@pytest.fixture(scope="module")
def demo_like(tiny_bert, toy_txt, tmp_path_factory):
    """A tiny spindle run with every source file the plots read: train_log.jsonl, best/,
    compute_elbo.py --json, predict.py --show_process, a bench sweep."""
    capsys = _Capture()
    out = tmp_path_factory.mktemp("plots-run")
    code, _, err = run_main("word_freq.py", "--model_name_or_path", str(tiny_bert), "--dataset",
                            str(toy_txt), "--max_length", "24", "--output",
                            str(out / "freq.pt"), capsys=capsys)  # fmt: skip
    assert code == 0, err
    code, _, err = run_main(
        "main.py", "--model_name_or_path", str(tiny_bert), "--from_scratch", "--dataset",
        str(toy_txt), "--word_freq_file", str(out / "freq.pt"), "--word_freq_lambda", "0.3",
        "--batch_size", "8", "--max_length", "24", "--dev_size", "16", "--num_steps", "64",
        "--lr", "2e-3", "--warmup_steps", "2", "--logging_steps", "2", "--eval_steps", "3",
        "--max_steps", "6", "--output_dir", str(out), "--fitlog_dir", "", "--quiet",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    plain = ["--estimator", "plain"]  # the estimator whose draws split by t
    if "--estimator" not in __import__("compute_elbo").build_parser().format_help():
        plain = []
    code, _, err = run_main("compute_elbo.py", "--checkpoint", str(out / "best"), "--dataset",
                            str(toy_txt), "--split", "train", "--bound", "continuous",
                            "--mc_samples", "2", "--max_examples", "8", "--quiet", "--json",
                            str(out / "elbo_validation.json"), *plain,
                            capsys=capsys)  # fmt: skip
    assert code == 0, err
    code, _, err = run_main("predict.py", "--checkpoint", str(out / "best"), "--num_samples", "2",
                            "--batch_size", "2", "--num_steps", "16", "--length", "6",
                            "--show_process", "--output", str(out / "samples.txt"), "--quiet",
                            capsys=capsys)  # fmt: skip
    assert code == 0, err
    sweep = [
        {"date": "2026-01-01T00:00:00+00:00", "machine": "old", "num_steps": 64,
         "sampler": "ancestral", "samples_per_s": 9.0, "calls_per_sample": 64},
    ] + [
        {"date": "2026-02-01T00:00:00+00:00", "machine": "m", "num_steps": n, "sampler": s,
         "samples_per_s": 100.0 / n / (1 if s == "ancestral" else 0.6),
         "calls_per_sample": n if s == "ancestral" else n // 2}
        for n in (64, 512) for s in ("ancestral", "cached")
    ]  # fmt: skip
    (out / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sweep))
    return out


class _Capture:
    """capsys for a module-scoped fixture: run_main only needs readouterr()."""

    def readouterr(self):
        return "", ""


def test_the_entry_point_writes_every_picture(demo_like, tmp_path, capsys):
    code, stdout, err = run_main("evaluation.plots", str(demo_like), "--bench",
                                 str(demo_like / "sweep.jsonl"), "--out", str(tmp_path),
                                 capsys=capsys)  # fmt: skip
    assert code == 0, err
    for name in ("training", "spindle", "elbo_terms", "sampling", "bench_sampling"):
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
        assert str(png) in stdout


def test_each_picture_draws_its_source(demo_like, tmp_path):
    log = [json.loads(line) for line in (demo_like / "train_log.jsonl").read_text().splitlines()]
    drawn = plots.plot_training(demo_like / "train_log.jsonl", tmp_path / "t.png")
    assert drawn["step"] == [r["step"] for r in log if "loss" in r] == [2, 4, 6]
    assert drawn["loss"] == [r["loss"] for r in log if "loss" in r]
    assert drawn["lr"] == [r["lr"] for r in log if "loss" in r]
    assert drawn["dev_nats_per_token"] == [r["dev_nats_per_token"] for r in log
                                           if "dev_nats_per_token" in r]  # fmt: skip

    spindle = plots.plot_spindle(demo_like / "best", tmp_path / "s.png")
    ckpt = load_checkpoint(demo_like / "best")
    schedule = ckpt.config.noise_schedule()
    u = torch.tensor(spindle["u"], dtype=torch.float64)
    assert spindle["plain"] == schedule.base_alpha_bar(u).tolist()
    tokens = spindle["tokens"]
    assert tokens["most frequent"]["count"] == int(ckpt.counts.max())
    assert tokens["rarest"]["count"] == int(ckpt.counts[ckpt.counts > 0].min())
    frequent = torch.tensor(tokens["most frequent"]["alpha_bar"])
    rare = torch.tensor(tokens["rarest"]["alpha_bar"])
    middle = len(u) // 2
    assert frequent[middle] > spindle["plain"][middle] > rare[middle]  # frequent kept longer
    assert frequent[0] == rare[0] == 1.0

    elbo = json.loads((demo_like / "elbo_validation.json").read_text())
    terms = plots.plot_elbo_terms(demo_like / "elbo_validation.json", tmp_path / "e.png")
    assert terms["nats_per_token"] == elbo["terms"]["nats_per_token"]
    assert sum(terms["nats_per_token"]) + terms["reconstruction_nats_per_token"] == pytest.approx(
        elbo["given_length"]["nats_per_token"], rel=1e-6
    )

    process = json.loads((demo_like / "samples.txt.process.json").read_text())
    strip = plots.plot_sampling(demo_like / "samples.txt.process.json", tmp_path / "p.png", 4)
    assert process["num_steps"] == 16 and len(process["frames"]) >= 4
    assert strip["steps"][0] == process["frames"][0]["step"] == 16
    assert strip["steps"][-1] == process["frames"][-1]["step"]
    assert strip["tokens"][0] == process["frames"][0]["tokens"]
    assert strip["masked"][0] == [True] * 6 and strip["masked"][-1].count(True) < 6
    assert strip["masked"] == [f["masked"] for f in process["frames"] if f["step"] in
                               strip["steps"]]  # fmt: skip

    bench = plots.plot_bench(demo_like / "sweep.jsonl", tmp_path / "b.png")
    assert bench["machine"] == "m"
    assert bench["samplers"]["cached"]["num_steps"] == [64, 512]
    assert bench["samplers"]["ancestral"]["calls_per_sample"] == [64, 512]


def test_a_missing_run_is_one_line(tmp_path, capsys):
    code, _, err = run_main("evaluation.plots", str(tmp_path / "nope"), capsys=capsys)
    assert code == 2 and "no such folder" in err and err.count("\n") == 1


def test_training_png_says_what_it_draws(demo_like, tmp_path):
    drawn = plots.plot_training(demo_like / "train_log.jsonl", tmp_path / "t.png", "my-run",
                                loss_meaning(demo_like))  # fmt: skip
    assert drawn["title"] == "my-run: training"
    assert "d3pm: T × one random step's KL" in drawn["panels"][0]
    assert "nats per token" in drawn["panels"][0] and drawn["tokens_per_s"][0] > 0
    log = [json.loads(line) for line in (demo_like / "train_log.jsonl").read_text().splitlines()]
    dev = [r for r in log if "dev_nats_per_token" in r]
    assert drawn["dev_half_width"] == [1.96 * r["dev_nats_per_token_se"] for r in dev]
    # a log from before train_nats_per_token: its loss per masked token, before any dev
    early = tmp_path / "early.jsonl"
    early.write_text(json.dumps({"step": 2, "loss": 9.0, "loss_per_token": 3.0, "lr": 1e-8}) + "\n")
    drawn = plots.plot_training(early, tmp_path / "e.png")
    assert drawn["dev_step"] == [] and drawn["train_nats_per_token"] == [3.0]


def test_the_sampling_picture_names_the_sampler_that_ran(demo_like, tmp_path):
    process = demo_like / "samples.txt.process.json"
    settings = json.loads((demo_like / "samples.txt.json").read_text())
    assert json.loads(process.read_text())["sampler"] == "auto"
    drawn = plots.plot_sampling(process, tmp_path / "p.png", 4)
    assert drawn["sampler"] == settings["sampler_used"] == "rowcache"


def test_the_speed_figure_marks_the_default_sampler(demo_like, tmp_path):
    drawn = plots.plot_bench(demo_like / "sweep.jsonl", tmp_path / "b.png", default="cached")
    assert drawn["default"] == "cached"
    assert plots.plot_bench(demo_like / "sweep.jsonl", tmp_path / "b.png")["default"] is None


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [("train_log.jsonl", '{"loss": 1.0}\n', "train_log.jsonl:1: no integer 'step'"),
     ("train_log.jsonl", '{"step": 1, "loss": 1.0}\n{"step": 2, "loss": "x"}\n',
      "train_log.jsonl:2: loss is 'x'"),
     ("train_log.jsonl", "", "no training record yet"),
     ("train_log.jsonl", '{"step": 2, "dev_nats_per_token": 3.0}\n', "no training record yet"),
     ("s.process.json", '{"num_steps": 4}', "s.process.json: no 'frames' list"),
     ("s.process.json", '{"frames": [{"tokens": ["a"]}]}', "frame 0 has no step or tokens"),
     ("s.process.json", "{not json", "cannot be read as JSON")],
)  # fmt: skip
def test_a_damaged_source_is_one_line_naming_it(tmp_path, capsys, name, text, expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_text(text)
    code, _, err = run_main("evaluation.plots", str(run), "--out", str(tmp_path / "out"),
                                 capsys=capsys)  # fmt: skip
    assert code == 2 and expected in err and err.count("\n") == 1, err
    assert not list((tmp_path / "out").glob("*.png"))


def test_damaged_statistics_are_one_line(demo_like, tmp_path, capsys):
    import shutil

    best = tmp_path / "best"
    shutil.copytree(demo_like / "best", best)
    statistics = best / "corpus_statistics.safetensors"
    statistics.write_bytes(statistics.read_bytes()[:40])
    code, _, err = run_main("evaluation.plots", str(tmp_path), "--checkpoint", str(best),
                            "--out", str(tmp_path / "out"), capsys=capsys)  # fmt: skip
    assert code == 2 and "corpus_statistics.safetensors" in err and err.count("\n") == 1, err


def test_an_out_that_cannot_be_written_is_one_line(demo_like, tmp_path, capsys):
    out = tmp_path / "a-file"
    out.write_text("not a folder")
    code, _, err = run_main("evaluation.plots", str(demo_like), "--out", str(out / "pictures"),
                            capsys=capsys)  # fmt: skip
    assert code == 2 and "cannot write" in err and "--out" in err and err.count("\n") == 1, err


def _ablation_plots():
    from experiments.ablation import plots

    return plots


def test_the_ablation_pictures_from_the_committed_results(tmp_path, capsys):
    module = _ablation_plots()
    history = module.RESULTS.parent / "bf16-600-shared-noise" / "steps300" / "results.jsonl"
    drawn = module.main([str(history), "--out", str(tmp_path)])
    records = [json.loads(line) for line in history.read_text().splitlines()]
    curves = drawn["dev_curves.png"]
    assert list(curves) == list(dict.fromkeys(r["row"] for r in records))  # one line per row
    for row, line in curves.items():
        runs = [dict(r["dev_curve"]) for r in records if r["row"] == row]
        assert len(line["seeds"]) == len(runs) and line["steps"]
        for i, step in enumerate(line["steps"]):  # mean and range of the seeds, by hand
            values = [run[step] for run in runs]
            assert line["mean"][i] == pytest.approx(sum(values) / len(values), rel=1e-12)
            assert (line["low"][i], line["high"][i]) == (min(values), max(values))
    assert any(len(line["seeds"]) > 1 for line in curves.values())
    (spindle,) = [r for r in records if "table3" in r]
    assert drawn["table3.png"] == {int(k): v["ppl_per_word"] for k, v in spindle["table3"].items()}
    for name in ("dev_curves.png", "table3.png"):
        assert (tmp_path / name).stat().st_size > 20000
    assert len(set(module.COLOURS)) >= len(curves)


def test_the_committed_study_pictures_are_current(tmp_path):
    """Every committed pictures.json is what today's code draws from the results beside it:
    a picture whose results or drawing code changed since is stale (redraw it with python3 -m
    experiments.ablation.plots RESULTS)."""
    module = _ablation_plots()
    committed = sorted(module.RESULTS.parent.rglob("pictures.json"))
    assert committed
    for path in committed:
        drawn = module.write_pictures(path.parent / "results.jsonl", tmp_path)
        stored = json.loads(path.read_text())
        assert json.loads(json.dumps(drawn)) == stored, f"{path} is stale"
        assert all((path.parent / name).is_file() for name in stored), f"{path}: a PNG is missing"


@pytest.mark.parametrize(
    ("text", "expected"),
    [('{"seed": 1, "dev_curve": [[1, 2.0]]}\n', "results.jsonl:1: a record needs row"),
     ('{"row": "a", "seed": 1, "dev_curve": [[1, 2.0]]}\n{"row": "b", "seed": 1}\n',
      "results.jsonl:2: a record needs row"),
     ("", "results.jsonl: no records")],
)  # fmt: skip
def test_a_damaged_ablation_record_is_one_line(tmp_path, capsys, text, expected):
    results = tmp_path / "results.jsonl"
    results.write_text(text)
    code, _, err = run_main_module(_ablation_plots(), [str(results)], capsys)
    assert code == 2 and expected in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("*.png"))


def run_main_module(module, argv, capsys):
    capsys.readouterr()
    try:
        module.main(argv)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    return code, *capsys.readouterr()
