"""End to end: word_freq.py → main.py → resume → load the checkpoint in a fresh process."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from evaluation import compare, text_metrics
from models import load_checkpoint, load_training_state

REPO = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
}


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args],
        check=False,
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def run_main(script: str, *args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``script``'s main(argv) in this process: (exit status, stdout, stderr).

    For error paths and short runs: it skips the ~6 s of imports a fresh process pays.
    """
    module = importlib.import_module(script.removesuffix(".py"))
    capsys.readouterr()
    try:
        module.main(list(args))
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


def train_args(tiny_bert, toy_txt, freq, out, steps, *extra):
    return [
        "main.py", "--model_name_or_path", str(tiny_bert), "--from_scratch", "true",
        "--dataset", str(toy_txt), "--word_freq_file", str(freq), "--batch_size", "8",
        "--max_length", "24", "--dev_size", "16", "--num_steps", "100", "--lr", "2e-3",
        "--warmup_steps", "5", "--logging_steps", "1", "--eval_steps", "6",
        "--fitlog_dir", str(out / "logs"), "--output_dir", str(out), "--max_steps", str(steps),
        "--timestep", "layerwise", *extra,
    ]  # fmt: skip


def losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


LOGITS = """
import sys, torch
from evaluation import compare, text_metrics
from models import load_checkpoint, load_training_state
ckpt = load_checkpoint(sys.argv[1])
xt = torch.tensor([[2023, 103, 2003, 103], [1037, 103, 0, 0]])
with torch.no_grad():
    out = ckpt.model(xt, torch.tensor([0.5, 0.5]), xt == 103)
torch.save(out, sys.argv[2])
"""


@pytest.fixture(scope="module")
def freq(tiny_bert, toy_txt, tmp_path_factory):
    path = tmp_path_factory.mktemp("freq") / "counts.pt"
    out = run("word_freq.py", "--model_name_or_path", str(tiny_bert), "--dataset", str(toy_txt),
              "--output", str(path))  # fmt: skip
    assert str(path) in out.stdout
    return path


@pytest.fixture(scope="module")
def spindle_run(tiny_bert, toy_txt, freq, tmp_path_factory):
    """λ = 0.3, layer-wise time, 12 steps straight through."""
    out = tmp_path_factory.mktemp("spindle")
    run(*train_args(tiny_bert, toy_txt, freq, out, 12))
    return out


@pytest.fixture(scope="module")
def plain_run(tiny_bert, toy_txt, freq, tmp_path_factory):
    """λ = 0, time-agnostic, mdlm objective."""
    out = tmp_path_factory.mktemp("plain")
    extra = ["--word_freq_lambda", "0", "--timestep", "none", "--objective", "mdlm"]
    run(*train_args(tiny_bert, toy_txt, freq, out, 12, *extra))
    return out


def test_train_resume_and_reload(tiny_bert, toy_txt, freq, spindle_run, tmp_path):
    straight, resumed = spindle_run, tmp_path / "resumed"
    run(*train_args(tiny_bert, toy_txt, freq, resumed, 6))
    run(
        *train_args(
            tiny_bert,
            toy_txt,
            freq,
            resumed,
            12,
            "--resume_from",
            str(resumed / "last"),
        )
    )
    a, b = losses(straight), losses(resumed)
    assert sorted(a) == list(range(1, 13)) and sorted(b) == list(range(1, 13))
    assert all(a[s] == b[s] for s in range(7, 13)), "resumed losses differ from the straight run"
    assert (straight / "best" / "model.safetensors").is_file()
    assert (straight / "logs").is_dir()

    run("-c", LOGITS, str(resumed / "last"), str(tmp_path / "fresh.pt"))
    fresh = torch.load(tmp_path / "fresh.pt", weights_only=True)
    here = load_checkpoint(resumed / "last")
    xt = torch.tensor([[2023, 103, 2003, 103], [1037, 103, 0, 0]])
    with torch.no_grad():
        ours = here.model(xt, torch.tensor([0.5, 0.5]), xt == 103)
        theirs = load_checkpoint(straight / "last").model(xt, torch.tensor([0.5, 0.5]), xt == 103)
    assert torch.equal(fresh, ours)
    assert torch.allclose(theirs, ours, atol=1e-6)
    assert here.config.timestep == "layerwise" and here.counts is not None


@pytest.mark.parametrize("lam", ["0", "0.3"])
@pytest.mark.parametrize("bound", ["discrete", "continuous"])
def test_full_sequence_bounds_are_above_the_true_nll(spindle_run, plain_run, tmp_path, lam, bound,
                                                     capsys):  # fmt: skip
    checkpoint = (spindle_run if lam == "0.3" else plain_run) / "best"
    out = tmp_path / "elbo.json"
    code, stdout, err = run_main(
        "compute_elbo.py", "--checkpoint", str(checkpoint), "--dataset", "toy",
        "--max_examples", "48", "--bound", bound, "--json", str(out),
        *(["--eval_step_size", "10"] if bound == "discrete" else ["--mc_samples", "2"]),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err[-2000:]
    record = json.loads(out.read_text())
    full, truth = record["full_sequence"], record["toy_oracle"]
    assert record["protocol"] == "exact" and record["valid_bound"]
    assert full["num_sequences"] == 48
    slack = 3 * full["nats_per_sequence_se"]
    assert full["nats_per_sequence"] >= truth["true_nats_per_sequence"] - slack
    assert full["nats_per_sequence"] > record["given_length"]["nats_per_sequence"]
    assert "toy oracle" in stdout and "perplexity per word" in stdout


@pytest.mark.parametrize("bound", ["discrete", "continuous"])
def test_two_checkpoints_are_compared_pairwise(spindle_run, plain_run, tmp_path, bound, capsys):
    """compute_elbo.py --json keeps every sentence (id, counts, nats); the same sentence gets the
    same noise in both runs, whatever the batch size; evaluation.compare pairs them by id."""
    records = {}
    for name, run, batch in (("a", spindle_run, "5"), ("b", plain_run, "16")):
        out = tmp_path / f"{name}.json"
        if bound == "continuous":
            extra = ["--estimator", "importance", "--mc_samples", "3"]
        else:
            extra = ["--eval_step_size", "10"]
        if name == "b" and bound == "continuous":
            extra += ["--proposal", str(tmp_path / "a.json")]
        code, _, err = run_main(
            "compute_elbo.py", "--checkpoint", str(run / "best"), "--dataset", "toy",
            "--max_examples", "20", "--bound", bound, "--batch_size", batch,
            "--json", str(out), *extra, capsys=capsys,
        )  # fmt: skip
        assert code == 0, err[-2000:]
        records[name] = json.loads(out.read_text())
    a, b = records["a"], records["b"]
    assert a["sentences"]["id"] == b["sentences"]["id"] and len(a["sentences"]["id"]) == 20
    assert sum(a["sentences"]["tokens"]) == a["given_length"]["num_tokens"]
    mean = sum(a["sentences"]["nats"]) / sum(a["sentences"]["tokens"])
    assert mean == pytest.approx(a["given_length"]["nats_per_token"])
    if bound == "continuous":
        assert a["noise"]["proposal"] == b["noise"]["proposal"] is not None
        assert len(a["sentences"]["nats_var"]) == 20 and a["noise"]["draws"] == 3
    [result] = compare.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    out = capsys.readouterr().out
    assert result["num_sentences"] == 20 and result["noise_differs"] == []
    assert "20 paired sentences" in out and "paired s.e." in out and "unpaired s.e." in out


def test_a_proposal_from_a_record_without_one_is_refused(spindle_run, tmp_path, capsys):
    out = tmp_path / "plain.json"
    args = ["--checkpoint", str(spindle_run / "best"), "--dataset", "toy", "--max_examples", "4",
            "--bound", "continuous", "--mc_samples", "1"]  # fmt: skip
    assert run_main("compute_elbo.py", *args, "--json", str(out), capsys=capsys)[0] == 0
    code, _, err = run_main("compute_elbo.py", *args, "--estimator", "importance",
                            "--proposal", str(out), capsys=capsys)  # fmt: skip
    assert code == 2 and "field noise.proposal is empty" in err and err.count("\n") == 1
    code, _, err = run_main("compute_elbo.py", *args, "--proposal", str(out), capsys=capsys)
    assert code == 2 and "--proposal is used by --estimator importance only" in err


@pytest.mark.parametrize("native", [False, True])
def test_bf16_is_what_ran_in_the_bound_and_the_samples(spindle_run, tmp_path, native, capsys,
                                                       monkeypatch):  # fmt: skip
    """--bf16 on compute_elbo.py and predict.py: the record says the precision that ran, and a
    device without native bf16 says why it used fp32 (one note line)."""
    from common import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    ckpt = str(spindle_run / "best")
    out = tmp_path / "b.json"
    code, _, err = run_main("compute_elbo.py", "--checkpoint", ckpt, "--dataset", "toy",
                            "--max_examples", "4", "--bound", "continuous", "--mc_samples", "1",
                            "--bf16", "--json", str(out), capsys=capsys)  # fmt: skip
    assert code == 0, err[-2000:]
    assert json.loads(out.read_text())["precision"] == ("bf16" if native else "fp32")
    assert ("no AVX512-BF16/AMX" in err) != native
    code, _, err = run_main("predict.py", "--checkpoint", ckpt, "--num_samples", "2",
                            "--num_steps", "8", "--bf16", "--output", str(tmp_path / "s.txt"),
                            capsys=capsys)  # fmt: skip
    assert code == 0, err[-2000:]
    meta = json.loads((tmp_path / "s.txt.json").read_text())
    assert meta["precision"] == ("bf16" if native else "fp32") and meta["tokens"] > 0


def test_resume_with_changed_settings_is_refused(tiny_bert, toy_txt, freq, spindle_run, capsys):
    args = train_args(tiny_bert, toy_txt, freq, spindle_run, 20, "--timestep", "none")
    code, _, err = run_main(*args, "--resume_from", str(spindle_run / "last"), capsys=capsys)
    assert code == 2 and "--timestep was 'layerwise', now 'none'" in err


def test_official_protocol_is_labelled(spindle_run, capsys):
    code, out, err = run_main(
        "compute_elbo.py", "--checkpoint", str(spindle_run / "best"), "--dataset", "toy",
        "--max_examples", "8", "--eval_step_size", "20", "--protocol", "official",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err[-2000:]
    assert "NOT a valid bound" in out
    rows = [line for line in out.splitlines() if line.startswith(("NLL", "bits", "perplexity"))]
    assert len(rows) == 5 and all("†" in row for row in rows)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--eval_step_size", "7"], "does not divide"),
        (["--protocol", "leaky"], "--protocol 'leaky' is unknown"),
        (["--mc_samples", "0"], "--mc_samples must be"),
        (["--estimator", "lucky"], "--estimator 'lucky' is unknown"),
        (
            ["--bound", "continuous", "--estimator", "importance", "--proposal", "absent.json"],
            "absent.json: cannot be",
        ),
        (["--estimator", "rao_blackwell_loo"], "--estimator is ignored with --bound discrete"),
        (["--bound", "discrete", "--mc_samples", "8"], "--mc_samples is ignored with --bound"),
        (
            ["--bound", "continuous", "--eval_step_size", "4"],
            "--eval_step_size is ignored with --bound continuous",
        ),
        (
            ["--bound", "continuous", "--estimator", "rao_blackwell_cv"],
            "needs a network that does not see the time",
        ),
    ],
)
def test_bad_elbo_input_is_one_clear_line(spindle_run, extra, message, capsys):
    args = ["--checkpoint", str(spindle_run / "best"), *extra]
    code, _, err = run_main("compute_elbo.py", *args, capsys=capsys)
    assert code == 2 and message in err, err[-2000:]
    assert "Traceback" not in err and err.count("\n") == 1


def test_an_estimator_the_checkpoint_cannot_take_is_refused_before_it_loads(
    spindle_run, tmp_path, capsys, monkeypatch
):
    """The Rao–Blackwell estimators against the checkpoint's own settings (its time design,
    then its spindle), read from its settings file before the model or the data load."""
    import compute_elbo

    def not_now(*args, **kwargs):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(compute_elbo, "load_checkpoint", not_now)
    args = ["--checkpoint", str(spindle_run / "best"), "--bound", "continuous"]
    code, _, err = run_main("compute_elbo.py", *args, "--estimator", "rao_blackwell_loo",
                            capsys=capsys)  # fmt: skip
    assert code == 2 and "--timestep layerwise" in err and err.count("\n") == 1
    settings = json.loads((spindle_run / "best" / "diffusion_config.json").read_text())
    copy = tmp_path / "time-agnostic"
    copy.mkdir()
    (copy / "diffusion_config.json").write_text(json.dumps({**settings, "timestep": "none"}))
    args = ["--checkpoint", str(copy), "--bound", "continuous", "--estimator", "rao_blackwell_cv"]
    code, _, err = run_main("compute_elbo.py", *args, capsys=capsys)
    assert code == 2 and "trained with the spindle" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def tiny_bert_no_dropout(tiny_bert, tmp_path_factory):
    """The tiny BERT without dropout, so that runs can be compared step by step."""
    path = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    for file in tiny_bert.iterdir():
        (path / file.name).write_bytes(file.read_bytes())
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("objective", ["d3pm", "mdlm"])
def test_two_processes_give_the_loss_curve_of_one(tiny_bert_no_dropout, toy_txt, freq, tmp_path,
                                                  objective):  # fmt: skip
    """2 gloo processes × 4 sequences = 1 process × 8 sequences, step by step; only rank 0
    writes; the DDP checkpoint loads."""
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--timestep", "none", "--objective", objective, "--eval_steps", "100"]
    run(*train_args(tiny_bert_no_dropout, toy_txt, freq, one, 4, *common, "--batch_size", "8"))
    args = train_args(tiny_bert_no_dropout, toy_txt, freq, two, 4, *common, "--batch_size", "4")
    run("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", *args)
    a, b = losses(one), losses(two)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4), (step, a, b)
    assert load_checkpoint(two / "last").config.objective == objective
    records = [p for p in (two / "logs").iterdir() if p.is_dir()]
    assert len(records) == 1  # one fitlog record (rank 0 only), beside fitlog's default.cfg


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--word_freq_lambda", "0.5"], "word_freq_lambda=0.5 makes"),
        (["--timestep", "clock"], "--timestep 'clock' is unknown"),
        (["--objective", "sedd"], "--objective 'sedd' is unknown"),
        (["--schedule", "sqrt"], "schedule 'sqrt' is unknown"),
        (["--max_length", "500"], "--max_length 500 does not fit"),
        (["--model_name_or_path", "no-such-org/no-such-model"], "cannot be reached"),
        (["--dataset", "missing.txt"], "not a file or folder"),
        (["--resume_from", "/nonexistent/last"], "no such directory"),
        (["--dataset", "lm1b"], "--dataset lm1b: tried split 'train' of the hub dataset"),
        (["--output_dir", "README.md/run"], "is not writable"),
        (["--dev_size", "0"], "--dev_size must be"),
    ],
)
def test_bad_training_input_is_one_clear_line(
    tiny_bert, toy_txt, freq, tmp_path, extra, message, capsys, monkeypatch
):
    """In-process (main.main(argv)) to keep the suite fast: exit status 2 and one line."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = train_args(tiny_bert, toy_txt, freq, tmp_path, 2)
    if "--output_dir" in extra:
        args = args[: args.index("--output_dir")] + args[args.index("--output_dir") + 2 :]
        extra = ["--output_dir", str(REPO / "README.md" / "run")]
    code, _, err = run_main(*args, *extra, capsys=capsys)
    assert code == 2, err[-2000:]
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_predict_ancestral_cached_and_semi_autoregressive(plain_run, tmp_path, capsys):
    ckpt = str(plain_run / "best")
    common = ["predict.py", "--checkpoint", ckpt, "--num_samples", "6", "--batch_size", "3",
              "--num_steps", "40", "--seed", "3"]  # fmt: skip
    for extra in (
        ["--sampler", "ancestral", "--output", str(tmp_path / "a.txt")],
        ["--sampler", "cached", "--output", str(tmp_path / "c.txt"), "--show_process"],
        ["--output", str(tmp_path / "r.txt")],  # auto: rowcache for a time-agnostic model
        ["--length", "6", "--semi_ar_windows", "3", "--output", str(tmp_path / "s.txt")],
    ):
        code, _, err = run_main(*common, *extra, capsys=capsys)
        assert code == 0, err[-2000:]
    a, c = (tmp_path / "a.txt").read_text(), (tmp_path / "c.txt").read_text()
    assert a == c == (tmp_path / "r.txt").read_text() and len(a.splitlines()) == 6
    meta_a = json.loads((tmp_path / "a.txt.json").read_text())
    meta_c = json.loads((tmp_path / "c.txt.json").read_text())
    meta_r = json.loads((tmp_path / "r.txt.json").read_text())
    assert meta_c["network_calls"] < meta_a["network_calls"]
    assert meta_r["sampler_used"] == "rowcache"
    assert json.loads((tmp_path / "c.txt.process.json").read_text())["sampler_used"] == "cached"
    assert meta_r["row_forwards"] < meta_c["row_forwards"] < meta_a["row_forwards"]
    assert meta_a["checkpoint"] == ckpt and meta_a["tokens_per_second"] > 0
    assert json.loads((tmp_path / "s.txt.json").read_text())["tokens"] == 6 * 12


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--topk", "-1"], "--topk must be"),
        (["--topp", "0"], "--topp must be"),
        (["--temperature", "0"], "--temperature must be"),
        (["--sampler", "cached"], "only exact for a time-agnostic network"),
        (["--step_size", "7"], "must be ≥ 1 and divide"),
        (["--length", "500"], "exceeds the checkpoint's max_length"),
    ],
)
def test_bad_sampling_input_is_one_clear_line(spindle_run, tmp_path, extra, message, capsys):
    args = ["--checkpoint", str(spindle_run / "best"), "--output", str(tmp_path / "x.txt"),
            *extra]  # fmt: skip
    code, _, err = run_main("predict.py", *args, capsys=capsys)
    assert code == 2 and message in err, err[-2000:]
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "x.txt").exists()


def test_compute_metric_conditional_and_its_errors(tmp_path, capsys):
    gen, ref, cand = tmp_path / "gen.txt", tmp_path / "ref.txt", tmp_path / "cand.jsonl"
    gen.write_text("a b c d\nthe dog\n")
    ref.write_text("a b c e\nthe dog slept\n")
    cand.write_text('{"candidates": ["a b c d", "a b c"]}\n{"candidates": ["the dog"]}\n')
    out = tmp_path / "m.json"
    args = ["--generated", str(gen), "--references", str(ref), "--mode", "conditional",
            "--candidates", str(cand)]  # fmt: skip
    code, _, err = run_main("compute_metric.py", *args, "--json", str(out), capsys=capsys)
    assert code == 0, err[-2000:]
    record = json.loads(out.read_text())
    assert record["bleu_convention"] == "diffuseq" and 0 < record["bleu"] < 1
    assert record["rouge_l"] == pytest.approx((2 * 0.75 * 0.75 / 1.5 + 0.8) / 2)
    cand.write_text('{"candidates": ["a"]}\nnot json\n')
    code, _, err = run_main("compute_metric.py", *args, capsys=capsys)
    assert code == 2 and "cand.jsonl:2:" in err


def _wait_for_step(out: Path, step: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = out / "train_log.jsonl"
        if log.is_file() and any(s >= step for s in losses(out)):
            return
        assert process.poll() is None, process.stderr.read()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no step {step} logged in {timeout} s")


def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_bert, toy_txt, freq, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    extra = ["--save_steps", "4", "--eval_steps", "100", "--keep_last", "2"]
    run(*train_args(tiny_bert, toy_txt, freq, straight, 24, *extra))
    args = train_args(tiny_bert, toy_txt, freq, killed, 24, *extra)
    process = subprocess.Popen([sys.executable, *args], cwd=REPO, env=ENV, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True)  # fmt: skip
    _wait_for_step(killed, 10, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resume_step = load_training_state(killed / "last")["step"]
    assert 4 <= resume_step < 24
    run(*args, "--resume_from", str(killed / "last"))
    a, b = losses(straight), losses(killed)
    assert sorted(b) == list(range(1, 25))
    assert all(a[s] == b[s] for s in range(resume_step + 1, 25))
    assert sorted(p.name for p in killed.glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-24"]


def test_sigterm_saves_last_and_exits(tiny_bert, toy_txt, freq, tmp_path):
    args = train_args(tiny_bert, toy_txt, freq, tmp_path, 10000, "--save_steps", "5000")
    process = subprocess.Popen([sys.executable, *args], cwd=REPO, env=ENV, stderr=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_step(tmp_path, 3, process)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    step = load_training_state(tmp_path / "last")["step"]
    assert 3 <= step < 10000 and "stopped by signal" in stdout


def test_demo_checkpoint_samples_are_not_degenerate(tmp_path):
    """The demo's recipe (MiniLM-L6, toy corpus, spindle), shortened to 60 steps: 32 samples
    (T' = 32) must not collapse ("The . The . The"): distinct 4-grams over all samples > 0.5."""
    freq_file = tmp_path / "word_freq.pt"
    run("word_freq.py", "--model_name_or_path", "minilm-l6", "--dataset", "toy", "--output",
        str(freq_file))  # fmt: skip
    run("main.py", "--model_name_or_path", "minilm-l6", "--dataset", "toy", "--word_freq_file",
        str(freq_file), "--word_freq_lambda", "0.3", "--max_steps", "60", "--batch_size", "16",
        "--lr", "3e-4", "--lr_schedule", "constant", "--warmup_steps", "20", "--max_length", "32",
        "--dev_size", "64", "--logging_steps", "20", "--eval_steps", "60", "--fitlog_dir", "",
        "--output_dir", str(tmp_path))  # fmt: skip
    samples = tmp_path / "samples.txt"
    run("predict.py", "--checkpoint", str(tmp_path / "best"), "--num_samples", "32",
        "--batch_size", "32", "--num_steps", "32", "--output", str(samples))  # fmt: skip
    texts = samples.read_text().splitlines()
    assert len(texts) == 32
    assert text_metrics.div_4([text_metrics.tokenize(t) for t in texts]) > 0.5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--objective", "mdlm", "--hybrid_lambda", "0.01"], "--hybrid_lambda is ignored with"),
        (["--objective", "mdlm", "--per_sequence_t"], "--per_sequence_t is ignored with"),
        (["--max_target_length", "16"], "--max_target_length is ignored with no --task"),
        (["--data_dir", "somewhere"], "--data_dir is ignored with no --task"),
        (["--max_steps", "5", "--epochs", "2"], "--epochs is ignored with --max_steps"),
        (["--eval_step_size", "4"], "--eval_step_size is ignored with --schedule mutual"),
        (["--task", "toy", "--eval_samples", "2"], "--eval_samples is ignored with --task"),
        (["--eval_samples", "0", "--eval_sample_steps", "8"],
         "--eval_sample_steps is ignored with --eval_samples 0"),
        (["--objective", "ar", "--eval_sample_steps", "8"],
         "--eval_sample_steps is ignored with --objective ar"),
        (["--eval_gen_ppl_model", "minilm-l6"],
         "--eval_gen_ppl_model minilm-l6: a bert masked LM (is_decoder false), not a causal"),
    ],
)  # fmt: skip
def test_a_training_flag_the_other_settings_ignore_is_one_line(tmp_path, extra, message, capsys):
    out = tmp_path / "run"
    code, _, err = run_main("main.py", "--output_dir", str(out), "--fitlog_dir", "", *extra,
                            capsys=capsys)  # fmt: skip
    assert code == 2 and message in err and err.count("\n") == 1, err[-2000:]
    assert not (out / "last").exists() and not (out / "train_log.jsonl").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--references", "REF", "--dataset", "toy"], "--dataset is ignored with --references"),
        (["--split", "validation"], "--split is ignored with no --dataset"),
        (["--candidates", "c.jsonl"], "--candidates is ignored with --mode unconditional"),
        (["--bleu_convention", "standard"], "--bleu_convention is ignored with --mode uncond"),
    ],
)
def test_a_metric_flag_the_other_settings_ignore_is_one_line(tmp_path, extra, message, capsys):
    gen, ref = tmp_path / "gen.txt", tmp_path / "ref.txt"
    gen.write_text("a b c d\n")
    ref.write_text("a b c e\n")
    extra = [str(ref) if a == "REF" else a for a in extra]
    code, _, err = run_main("compute_metric.py", "--generated", str(gen), *extra, capsys=capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err[-2000:]
