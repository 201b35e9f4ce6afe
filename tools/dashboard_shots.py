"""Screenshots of fitlog's dashboard during and after a short run, in headless Chromium, and
the width its key columns take in a 1,600 px window.

python3 -m tools.dashboard_shots [--chromium /usr/bin/chromium] [--width 1600] [--steps 160]

A 2-layer BERT (the MiniLM-L6 tokenizer, random weights) trains on the toy corpus with fitlog
on; after its second dev evaluation the run is paused (SIGSTOP) while the table and trend pages
are photographed, then it finishes and both are photographed again. Writes
bench/results/pictures/dashboard_{table,trends}_{during,after}.png and appends one line to
bench/results/dashboard.jsonl: the right edge, in px, of each key column (name, state,
progress, best dev bound, how the run ended), during and after, and whether all fit the
window. The pictures replace the committed ones only when everything worked. Needs Chromium
(Debian: apt-get install chromium) and playwright (pip install playwright); neither is a
dependency of the project, and no test needs them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from bench.harness import REPO, RESULTS, append_results
from common.cli import Parser
from common.errors import UsageError

KEY_COLUMNS = ("name", "state", "progress", "best_dev_nats_per_token", "ended")
PICTURES = RESULTS / "pictures"
BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip


def tiny_model(folder: Path) -> Path:
    """A 2-layer BERT with random weights and the MiniLM-L6 tokenizer, saved in ``folder``."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from models.backbone import resolve_model_name

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("minilm-l6"))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128,
                        max_position_embeddings=64)  # fmt: skip
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def start_run(model: Path, work: Path, steps: int) -> subprocess.Popen:
    """main.py on the toy corpus, fitlog records in ``work/logs``, its output in ``work/run``."""
    command = [
        sys.executable, "main.py", "--model_name_or_path", model, "--dataset", "toy",
        "--word_freq_lambda", 0, "--num_steps", 64, "--max_steps", steps, "--batch_size", 8,
        "--max_length", 32, "--dev_size", 32, "--lr", 1e-3, "--warmup_steps", 10,
        "--logging_steps", 5, "--eval_steps", steps // 4, "--eval_samples", 2,
        "--eval_sample_steps", 8, "--output_dir", work / "run", "--fitlog_dir", work / "logs",
        "--quiet",
    ]  # fmt: skip
    with open(work / "main.log", "w") as log:  # the child keeps its own handle
        return subprocess.Popen([str(c) for c in command], cwd=REPO, stdout=log, stderr=log)


def wait_for(condition, what: str, timeout: float, process: subprocess.Popen | None = None):
    """Poll ``condition()`` every 0.2 s until it is truthy; one UsageError after ``timeout``
    seconds or when ``process`` has died."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() not in (None, 0):
            raise UsageError(f"{what}: the process ended with status {process.returncode}")
        time.sleep(0.2)
    raise UsageError(f"{what}: not within {timeout:.0f} s")


def dev_evaluations(run: Path) -> int:
    """How many dev evaluations ``run``'s training log holds so far."""
    log = run / "train_log.jsonl"
    if not log.is_file():
        return 0
    return sum('"dev_nats_per_token"' in line for line in log.read_text().splitlines())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(url: str) -> bool:
    """Whether ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return reply.status == 200
    except OSError:
        return False


def photograph(browser, url: str, width: int, when: str, folder: Path) -> dict:
    """The table and the trend page at ``width`` px, as PNGs in ``folder``; the key columns'
    right edges and the run's state as the table shows them."""
    page = browser.new_page(viewport={"width": width, "height": 720})
    page.goto(f"{url}/")
    page.wait_for_selector("table tbody tr a.trend", state="attached", timeout=30_000)
    page.wait_for_timeout(500)
    edges = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('thead th[data-field]')]
              .map(th => [th.dataset.field, Math.round(th.getBoundingClientRect().right)]))"""
    )
    with urllib.request.urlopen(f"{url}/table/table", timeout=10) as reply:
        state = [row.get("meta-state") for row in json.load(reply)["data"].values()]
    page.screenshot(path=str(folder / f"dashboard_table_{when}.png"))
    with page.context.expect_page() as popup:
        page.click("table tbody tr a.trend")
    chart = popup.value
    chart.set_viewport_size({"width": width, "height": 720})
    chart.wait_for_load_state()
    chart.wait_for_timeout(3000)
    chart.screenshot(path=str(folder / f"dashboard_trends_{when}.png"))
    page.context.close()
    return {"state": state, "edges": edges}


def key_edges(edges: dict[str, int]) -> dict[str, int]:
    """The key columns' right edges; one UsageError naming a key column the table lacks."""
    missing = [key for key in KEY_COLUMNS if f"meta-{key}" not in edges]
    if missing:
        raise UsageError(f"the table has no column {missing} (its columns: {sorted(edges)})")
    return {key: edges[f"meta-{key}"] for key in KEY_COLUMNS}


def build_parser() -> Parser:
    p = Parser(prog="python3 -m tools.dashboard_shots", description=__doc__.splitlines()[0])
    p.flag("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    p.flag("--width", type=int, default=1600, help="window width in px")
    p.flag("--steps", type=int, default=160, help="optimizer steps of the run (at least 8)")
    return p


def stop(process: subprocess.Popen | None, timeout: float = 60) -> None:
    """Terminate ``process`` (resumed first if paused) and wait for it; kill it if it hangs."""
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def shoot(args, work: Path) -> dict:
    """Run, serve, photograph during and after; the measurements (the PNGs in ``work``)."""
    from playwright.sync_api import sync_playwright

    run = start_run(tiny_model(work / "tiny"), work, args.steps)
    server = None
    try:
        wait_for(lambda: dev_evaluations(work / "run") >= 2, "second dev evaluation", 600, run)
        os.kill(run.pid, signal.SIGSTOP)
        url = f"http://127.0.0.1:{free_port()}"
        server = subprocess.Popen(
            ["fitlog", "log", str(work / "logs"), "--ip", "127.0.0.1", "--port",
             url.rsplit(":", 1)[1]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for(lambda: serving(url), "fitlog log", 60, server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=BROWSER_FLAGS)
            during = photograph(browser, url, args.width, "during", work)
            os.kill(run.pid, signal.SIGCONT)
            wait_for(lambda: run.poll() is not None, "the run's end", 600)
            if run.returncode:
                raise UsageError(f"the run failed:\n{(work / 'main.log').read_text()[-2000:]}")
            after = photograph(browser, url, args.width, "after", work)
            version = browser.version
            browser.close()
    finally:
        stop(run)
        stop(server)
    edges = {when: key_edges(shot["edges"]) for when, shot in (("during", during),
                                                              ("after", after))}  # fmt: skip
    widest = max(max(e.values()) for e in edges.values())
    return {"window_px": args.width, "key_columns_right_px": edges["after"],
            "key_columns_right_px_during": edges["during"], "fits": widest <= args.width,
            "states": [during["state"], after["state"]], "chromium": version}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = build_parser()
    args = p.parse_args(argv)
    if not Path(args.chromium).is_file():
        p.error(f"--chromium {args.chromium}: no such file; apt-get install chromium")
    if args.steps < 8:
        p.error(f"--steps {args.steps}: at least 8 (a dev evaluation every steps/4)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        p.error("playwright is not installed: pip install playwright")
    with tempfile.TemporaryDirectory(prefix="dashboard-") as tmp:
        work = Path(tmp)
        row = shoot(args, work)
        PICTURES.mkdir(parents=True, exist_ok=True)
        for png in sorted(work.glob("dashboard_*.png")):
            shutil.copyfile(png, PICTURES / png.name)
    append_results(RESULTS / "dashboard.jsonl", [row], ["tools.dashboard_shots", *(argv or [])])
    print(json.dumps(row))


if __name__ == "__main__":
    main()
