"""tools/gpu_check.sh: without CUDA, one line and a dry run in which every step's command
parses; the dry run names a command that does not; the checks of the demo, torchrun and
pytest figures accept what they should and refuse what they should not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
STEPS = ["tests", "demo", "torchrun", "bench-train", "bench-train-compiled", "bench-elbo",
         "bench-elbo-compiled", "bench-sample", "bench-sample-compiled", "sampling"]  # fmt: skip


@pytest.fixture(scope="module")
def gpu_check():
    from tools import gpu_check

    return gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script measures")
def test_without_cuda_one_line_and_every_command_parses(tmp_path):
    done = subprocess.run(["bash", "tools/gpu_check.sh", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = done.stdout.splitlines()
    assert line.startswith("no CUDA device, nothing measured; dry run: the commands of 10 of 10")
    report = json.loads((tmp_path / "gpu_check.json").read_text())["dry_run"]
    assert [step["name"] for step in report] == STEPS
    assert all(step["parsed"] for step in report)


def test_the_script_needs_one_outdir():
    done = subprocess.run(["bash", "tools/gpu_check.sh"], cwd=REPO, capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 2 and done.stderr == "usage: bash tools/gpu_check.sh OUTDIR\n"


def test_a_command_that_does_not_parse_is_named(gpu_check, tmp_path):
    py = sys.executable
    assert gpu_check.parses([py, "main.py", "--lr", "1e-3"]) is None
    assert "main.py does not parse" in gpu_check.parses([py, "main.py", "--no_such_flag"])
    bad_mode = [py, "-m", "bench.bench", "--mode", "speed"]
    assert "bench.bench does not parse" in gpu_check.parses(bad_mode)
    launcher = [py, "-m", "torch.distributed.run", "--nproc_per_node", "NGPU", "main.py"]
    assert gpu_check.parses([*launcher, "--batch_size", "4"]) is None
    probe = [py, "-m", "torch.distributed.run", "--nproc_per_node", "NGPU", "-m",
             "tools.gpu_check"]  # fmt: skip
    assert gpu_check.parses([*probe, "--nccl"]) is None
    assert "tools.gpu_check does not parse" in gpu_check.parses([*probe, "--nccl_probe"])
    assert "main.py does not parse" in gpu_check.parses([*launcher, "--batch_size", "four"])
    commands = [c for step in gpu_check.steps(tmp_path) for c in step.commands]
    written = [c[i + 1] for c in commands for i, a in enumerate(c)
               if a in ("--output", "--output_dir", "--json", "--results")]  # fmt: skip
    assert len(written) == 12 and all(w.startswith(str(tmp_path)) for w in written)


def test_the_device_tests_are_the_files_with_a_device_test(gpu_check):
    files = gpu_check.device_test_files()
    assert {"tests/test_process.py", "tests/test_training.py", "tests/test_sampling.py"} <= set(
        files
    )
    assert "tests/test_gpu_check.py" not in files and "tests/test_cli.py" not in files


def _demo(out: Path, given: float, full: float) -> None:
    (out / "demo").mkdir(parents=True)
    record = {"given_length": {"nats_per_token": given}, "full_sequence": {"nats_per_token": full},
              "toy_oracle": {"true_nats_per_token": 1.7546}}  # fmt: skip
    (out / "demo" / "elbo_validation.json").write_text(json.dumps(record))
    log = [{"step": 25, "loss": 3.0}, {"step": 100, "dev_nats_per_token": 2.0},
           {"step": 200, "loss": 1.5}]  # fmt: skip
    (out / "demo" / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))


@pytest.mark.parametrize(
    ("given", "full", "ok"),
    [(1.70, 1.95, True), (1.50, 1.80, True), (1.80, 2.00, False), (1.62, 1.70, False)],
)
def test_the_demo_bound_is_checked_against_the_cpu_demo(gpu_check, tmp_path, given, full, ok):
    """Within 0.15 nats/token of the CPU demo's bound (1.6239, bench/results/cpu_demo_bound.json),
    and the full-sequence bound above the true NLL (1.7546)."""
    _demo(tmp_path, given, full)
    figures = gpu_check.check_demo(tmp_path, [])
    assert figures["ok"] is ok
    assert (figures["first_loss"], figures["last_loss"]) == (3.0, 1.5)


@pytest.mark.parametrize(("ddp_loss", "ok"), [(2.02, True), (2.1, False)])
def test_the_torchrun_curve_is_checked_against_one_process(gpu_check, tmp_path, ddp_loss, ok):
    for name, last in (("single", 2.0), ("ddp", ddp_loss)):
        (tmp_path / name).mkdir()
        rows = [{"step": 10, "loss": 4.0}, {"step": 20, "loss": last}]
        (tmp_path / name / "train_log.jsonl").write_text("\n".join(map(json.dumps, rows)))
    probe = '{"nccl_processes": 1, "nccl_ok": true}\n'
    figures = gpu_check.check_torchrun(tmp_path, [probe, "", ""])
    assert figures["ok"] is ok and figures["steps_compared"] == 2


def test_pytest_summary_counts(gpu_check):
    passed = gpu_check.pytest_counts(None, ["....\n40 passed, 3 skipped in 9.1s\n"])
    assert passed["ok"] and (passed["passed"], passed["skipped"]) == (40, 3)
    failed = gpu_check.pytest_counts(None, ["F.\n1 failed, 39 passed in 9.1s\n"])
    assert not failed["ok"] and failed["failed"] == 1
    assert not gpu_check.pytest_counts(None, ["\n5 skipped in 1.0s\n"])["ok"]


def test_an_outdir_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for outdir in (blocker, blocker / "below"):
        done = subprocess.run(["bash", "tools/gpu_check.sh", str(outdir)], cwd=REPO,
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "OUTDIR" in done.stderr and "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
