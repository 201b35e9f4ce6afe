"""The seq2seq demo recipe beats copying the source (opt-in: about 7 minutes on 2 CPU cores).

DIFFUSIONBERT_SLOW=1 python3 -m pytest -q tests/test_seq2seq_demo.py
"""

import json
import os
import subprocess

import pytest

from tests.test_cli import ENV, REPO


@pytest.mark.skipif(
    not os.environ.get("DIFFUSIONBERT_SLOW"),
    reason="runs bash run_condition.sh (about 7 minutes); set DIFFUSIONBERT_SLOW=1",
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
