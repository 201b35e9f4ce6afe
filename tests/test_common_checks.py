"""common/: outputs never overwrite inputs, results are finite and strict JSON, readers name
the file, and a flag a combination ignores is refused."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.checks import check_outputs_apart, nonfinite_field, require_finite
from common.cli import Parser
from common.errors import UsageError
from common.files import json_text, read_json, write_json

REPO = Path(__file__).resolve().parents[1]


def test_an_output_that_is_an_input_is_refused(tmp_path):
    record = tmp_path / "a.json"
    record.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(record)
    hard = tmp_path / "hard.json"
    os.link(record, hard)
    for out in (record, tmp_path / "." / "a.json", link, hard):
        with pytest.raises(UsageError, match="destroy an input"):
            check_outputs_apart({"--json": out}, {"record": record})
    check_outputs_apart({"--json": tmp_path / "b.json"}, {"record": record, "none": None})


def test_a_checkpoints_own_files_are_inputs_and_a_new_file_beside_them_is_not(tmp_path):
    from models import checkpoint_inputs

    checkpoint = tmp_path / "best"
    checkpoint.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt", "diffusion_config.json"):
        (checkpoint / name).write_text("{}")
    inputs = checkpoint_inputs(checkpoint)
    assert len(inputs) == 4 and checkpoint_inputs(tmp_path / "absent") == {}
    with pytest.raises(UsageError, match=r"--output .*config\.json is the input --checkpoint's"):
        check_outputs_apart({"--output": checkpoint / "config.json"}, inputs)
    samples = checkpoint / "samples.txt"
    check_outputs_apart({"--output": samples}, inputs)
    samples.write_text("a sample\n")  # a second run writes the same file again: allowed
    check_outputs_apart({"--output": samples}, checkpoint_inputs(checkpoint))
    counts = checkpoint / "counts.pt"
    counts.write_text("")
    with pytest.raises(UsageError, match="inside --output_dir's best"):
        check_outputs_apart({"--output_dir's best": checkpoint}, {"--word_freq_file": counts})


def test_non_finite_numbers_are_found_named_and_never_written(tmp_path):
    data = {"a": [1.0, {"b": math.nan}], "c": 2}
    assert nonfinite_field(data) == ("a[1].b", data["a"][1]["b"])
    assert nonfinite_field({"x": [1.0, 2], "y": "nan"}) is None
    with pytest.raises(UsageError, match=r"field per_word\.se is inf"):
        require_finite({"per_word": {"se": math.inf}}, "the comparison")
    out = tmp_path / "out.json"
    out.write_text('{"kept": true}\n')
    with pytest.raises(UsageError, match="field x is -inf"):
        write_json(out, {"x": -math.inf})
    assert json.loads(out.read_text()) == {"kept": True}  # the old file is untouched
    assert "NaN" not in json_text({"x": 1.5}) and json.loads(json_text([1, 2])) == [1, 2]


def test_read_json_names_the_file_and_where_it_breaks(tmp_path):
    torn = tmp_path / "training_args.json"
    torn.write_text('{"resolved": {"precision": "bf1')
    with pytest.raises(UsageError, match=r"training_args\.json: not complete JSON \(line 1"):
        read_json(torn)
    with pytest.raises(UsageError, match="cannot be read"):
        read_json(tmp_path / "absent.json", "--proposal")


def test_a_flag_the_combination_ignores_is_refused():
    p = Parser(prog="x")
    p.flag("--bound", default="discrete", help="which")
    p.flag("--mc_samples", type=int, default=8, help="draws")
    assert p.given(["--mc_samples", "8"]) == {"mc_samples"}  # the default value, given
    assert p.given([]) == set()
    with pytest.raises(UsageError, match="--mc_samples is ignored with --bound discrete"):
        p.refuse_ignored(["--mc_samples", "8"], ["mc_samples"], "--bound discrete")
    p.refuse_ignored(["--bound", "discrete"], ["mc_samples"], "--bound discrete")
    assert p.parse_args([]).mc_samples == 8  # defaults restored


def test_host_memory_is_the_smallest_of_what_the_process_may_use(monkeypatch):
    from common import memory

    monkeypatch.setattr(memory, "meminfo_available", lambda: 20 * memory.GIB)
    monkeypatch.setattr(memory, "cgroup_headroom", lambda: 6 * memory.GIB)
    monkeypatch.setattr(memory, "address_space_headroom", lambda: None)
    assert memory.available_bytes("cpu") == 6 * memory.GIB
    monkeypatch.setattr(memory, "address_space_headroom", lambda: 2 * memory.GIB)
    assert memory.available_bytes("cpu") == 2 * memory.GIB
    monkeypatch.setattr(memory, "address_space_headroom", lambda: -5)
    assert memory.available_bytes("cpu") == 0
    for name in ("meminfo_available", "cgroup_headroom", "address_space_headroom"):
        monkeypatch.setattr(memory, name, lambda: None)
    assert memory.available_bytes("cpu") is None


def test_an_address_space_limit_is_seen(tmp_path):
    """Under ``ulimit -v`` (RLIMIT_AS) a process has at most the limit less what it maps."""
    code = (
        "import resource\n"
        "from common import memory\n"
        "used = memory._read_int('/proc/self/statm') * resource.getpagesize()\n"
        "limit = used + memory.GIB\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))\n"
        "free = memory.available_bytes('cpu')\n"
        "assert 0 < free <= memory.GIB, free\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_cgroup_headroom_does_not_count_reclaimable_page_cache(monkeypatch):
    from common import memory

    values = {"/sys/fs/cgroup/memory.max": 8 * memory.GIB,
              "/sys/fs/cgroup/memory.current": 7 * memory.GIB}  # fmt: skip
    monkeypatch.setattr(memory, "_read_int", values.get)
    monkeypatch.setattr(memory, "_stat", lambda path, key: 5 * memory.GIB)
    assert memory.cgroup_headroom() == 6 * memory.GIB  # 8 − (7 − 5 of reclaimable cache)
    monkeypatch.setattr(memory, "_read_int", lambda path: None)
    assert memory.cgroup_headroom() is None
