"""The dashboard screenshots' tool (tools.dashboard_shots): the columns it measures are the
ones the run writes, a missing one is one line, and the committed measurement says the key
columns fit its window during and after a run."""

import json
import struct
from pathlib import Path

import pytest

from common.errors import UsageError
from tools import dashboard_shots
from training.dashboard import FitlogLogger

REPO = Path(__file__).resolve().parents[1]


def test_the_key_columns_are_the_meta_fields_a_run_writes_in_their_order(tmp_path):
    logger = FitlogLogger(tmp_path / "logs", tmp_path / "run")
    logger.start(0, 4)
    line = (logger.record / "meta.log").read_text().splitlines()[0]
    assert tuple(json.loads(line)["meta"]) == dashboard_shots.KEY_COLUMNS


def test_key_edges_reads_the_meta_columns_and_names_a_missing_one():
    edges = {f"meta-{key}": 100 * i for i, key in enumerate(dashboard_shots.KEY_COLUMNS)}
    assert dashboard_shots.key_edges({**edges, "hyper-lr": 9999})["ended"] == 400
    del edges["meta-state"]
    with pytest.raises(UsageError, match=r"no column \['state'\]"):
        dashboard_shots.key_edges(edges)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


def test_the_committed_screenshots_and_widths_agree():
    rows = [json.loads(line) for line in (REPO / "bench/results/dashboard.jsonl").open()]
    last = rows[-1]
    assert last["states"] == [["running"], ["finish"]]
    assert tuple(last["key_columns_right_px"]) == dashboard_shots.KEY_COLUMNS
    during = last["key_columns_right_px_during"]
    assert tuple(during) == dashboard_shots.KEY_COLUMNS
    widest = max(*last["key_columns_right_px"].values(), *during.values())
    assert last["fits"] is (widest <= last["window_px"])
    assert last["fits"] and last["window_px"] == 1600
    for page in ("table", "trends"):
        for when in ("during", "after"):
            width, _ = png_size(dashboard_shots.PICTURES / f"dashboard_{page}_{when}.png")
            assert width == last["window_px"]
