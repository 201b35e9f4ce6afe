"""common/: outputs never overwrite inputs, results are finite and strict JSON, readers name
the file, and a flag a combination ignores is refused."""

import json
import math
import os

import pytest

from common.checks import check_outputs_apart, nonfinite_field, require_finite
from common.cli import Parser
from common.errors import UsageError
from common.files import json_text, read_json, write_json


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


def test_files_inside_input_folders_and_inputs_inside_output_folders(tmp_path):
    checkpoint = tmp_path / "best"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    with pytest.raises(UsageError, match="is a file inside the input --checkpoint"):
        check_outputs_apart({"--output": checkpoint / "config.json"}, {"--checkpoint": checkpoint})
    check_outputs_apart({"--output": checkpoint / "samples.txt"}, {"--checkpoint": checkpoint})
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
