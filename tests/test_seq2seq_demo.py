"""The seq2seq demo, run as written, beats copying the source (about 7 minutes on 2 cores).

Set DIFFUSIONBERT_SKIP_DEMO=1 to skip it in a quick local run.
"""

import json
import os
import subprocess

import pytest

from tests.test_cli import ENV, REPO


@pytest.mark.skipif(
    bool(os.environ.get("DIFFUSIONBERT_SKIP_DEMO")),
    reason="DIFFUSIONBERT_SKIP_DEMO is set (this test runs bash run_condition.sh, ~7 minutes)",
)
def test_toy_demo_bleu_is_clearly_above_copying_the_source(tmp_path):
    subprocess.run(
        ["bash", "run_condition.sh", "toy", "--fitlog_dir", ""],
        cwd=REPO,
        env={**ENV, "OUT": str(tmp_path), "OMP_NUM_THREADS": "2"},
        check=True,
        capture_output=True,
        timeout=1800,
    )
    scores = json.loads((tmp_path / "generation" / "toy_metrics.json").read_text())
    assert scores["num_sources"] == 100
    assert scores["bleu"] > scores["copy_source_bleu"] + 0.3, scores
