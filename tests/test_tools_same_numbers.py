"""tools.same_numbers: two demo runs compared field by field (timings and paths left out) and
byte for byte."""

import json

from tools.same_numbers import compare


def fake_run(folder, loss, extra=None):
    (folder / "best").mkdir(parents=True)
    (folder / "last").mkdir()
    records = [{"step": 1, "loss": loss, "elapsed_s": 3.0, **(extra or {})}]
    (folder / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for name in ("elbo_validation.json", "metrics.json", "samples.txt.process.json"):
        (folder / name).write_text(json.dumps({"checkpoint": str(folder / "best"), "x": 1}))
    for name in ("samples.txt", "best/model.safetensors", "last/model.safetensors"):
        (folder / name).write_bytes(b"same")


def test_only_timings_paths_and_ignored_fields_may_differ(tmp_path):
    fake_run(tmp_path / "a", 0.5)
    fake_run(tmp_path / "b", 0.5, {"grad_norm": 1.0})
    result = compare(tmp_path / "a", tmp_path / "b")
    assert not result["train_log.jsonl"] and all(v for k, v in result.items() if "log" not in k)
    assert all(compare(tmp_path / "a", tmp_path / "b", ("grad_norm",)).values())
    fake_run(tmp_path / "c", 0.6)
    (tmp_path / "c" / "samples.txt").write_bytes(b"other")
    result = compare(tmp_path / "a", tmp_path / "c")
    assert not result["train_log.jsonl"] and not result["samples.txt (bytes)"]
    assert result["metrics.json"]  # the path of each run's own checkpoint is not a difference
