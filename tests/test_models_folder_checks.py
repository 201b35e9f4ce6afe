"""Every file of a checkpoint folder is checked on load; a damaged one is one line
naming the file (never a traceback, never silent defaults or a random model)."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from common.errors import UsageError
from models import DiffusionConfig, build_model, load_checkpoint, load_training_state
from models.checkpoint import STATISTICS, TIME, TRAINING_STATE, save_checkpoint
from tests.test_cli import run_main


@pytest.fixture(scope="module")
def saved(tiny_bert, tokenizer, tmp_path_factory):
    """A layer-wise, λ = 0.3 checkpoint folder with statistics and a training state, written
    by this version's save_checkpoint (so it must load)."""
    path = tmp_path_factory.mktemp("ckpt") / "last"
    config = DiffusionConfig(num_steps=100, word_freq_lambda=0.3, timestep="layerwise",
                             max_length=24)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True)
    counts = torch.zeros(len(tokenizer), dtype=torch.int64)
    counts[1000:1100] = torch.arange(1, 101)
    lengths = torch.zeros(25, dtype=torch.int64)
    lengths[5:20] = 3
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.mlm.bert.embeddings.word_embeddings.weight.sum().backward()
    optimizer.step()
    state = {"step": 1, "optimizer": optimizer.state_dict(), "scheduler": {}, "rng": [{}],
             "best": None, "bad_steps": 0, "skipped_steps": 0, "args": {}}  # fmt: skip
    save_checkpoint(path, model, tokenizer, config, counts, state, lengths)
    return path


@pytest.fixture
def copy(saved, tmp_path):
    target = tmp_path / "last"
    shutil.copytree(saved, target)
    return target


def error_of(path) -> str:
    with pytest.raises(UsageError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_saved_folder_loads(saved):
    ckpt = load_checkpoint(saved)
    assert ckpt.counts is not None and ckpt.lengths.numel() == 25
    assert load_training_state(saved)["step"] == 1


def edit_settings(path, change):
    file = path / "diffusion_config.json"
    data = json.loads(file.read_text())
    file.write_text(json.dumps(change(data)))
    return file


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: {k: v for k, v in d.items() if k != "num_steps"}, "num_steps are missing"),
        (lambda d: {k: v for k, v in d.items() if k != "word_freq_lambda"}, "word_freq_lambda"),
        (lambda d: [d], "found a list"),
        (lambda d: {**d, "num_steps": "100"}, "num_steps='100' must be an integer"),
        (lambda d: {**d, "word_freq_lambda": float("nan")}, "must be a finite number"),
        (lambda d: {**d, "timestep": "clock"}, "timestep='clock' is not one of"),
        (lambda d: {**d, "allow_nonmonotone_lambda": "no"}, "must be true or false"),
        (lambda d: {**d, "word_freq_lambda": 0.5}, "word_freq_lambda=0.5 makes"),
    ],
)
def test_bad_settings_name_the_file_not_a_flag(copy, change, expected):
    file = edit_settings(copy, change)
    message = error_of(copy)
    assert str(file) in message and expected in message, message
    assert "--timestep" not in message and "--word_freq_lambda" not in message


def test_settings_written_before_seq2seq_still_load(copy):
    edit_settings(copy, lambda d: {k: v for k, v in d.items()
                                   if k not in ("task", "max_target_length")})  # fmt: skip
    assert load_checkpoint(copy).config.task is None


def test_undecodable_settings_name_file_and_line(copy):
    file = copy / "diffusion_config.json"
    file.write_bytes(b'{\n  "schedule": "mu\xfftual"\n}')
    message = error_of(copy)
    assert f"{file}:2: not UTF-8" in message


def truncate(file, keep=0.5):
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("name", ["model.safetensors", STATISTICS, TIME])
def test_truncated_tensor_files_are_named(copy, name):
    truncate(copy / name)
    message = error_of(copy)
    assert str(copy / name) in message and "cannot be" in message, message


def test_a_config_of_another_model_size_is_named(copy):
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "intermediate_size": 128}))
    message = error_of(copy)
    assert "model.safetensors" in message


def test_a_config_with_more_layers_is_not_filled_with_random_weights(copy):
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    message = error_of(copy)
    assert "model.safetensors" in message and "do not match config.json" in message


def test_the_advice_points_at_the_old_copy_when_there_is_one(copy):
    shutil.copytree(copy, copy.parent / ".last.old")
    truncate(copy / "model.safetensors")
    assert ".last.old" in error_of(copy)


def test_a_folder_without_tokenizer_json_is_incomplete(copy):
    (copy / "tokenizer.json").unlink()
    assert "tokenizer.json missing" in error_of(copy)


def rewrite_statistics(path, **tensors):
    file = path / STATISTICS
    save_file({**load_file(file), **tensors}, file)
    return file


@pytest.mark.parametrize(
    ("tensors", "expected"),
    [
        ({"token_counts": torch.full((30522,), float("nan"))}, "NaN/inf"),
        ({"token_counts": torch.full((30522,), float("inf"))}, "integer tensor"),
        ({"token_counts": -torch.ones(30522, dtype=torch.int64)}, "negative"),
        ({"token_counts": torch.zeros(30522, dtype=torch.int64)}, "all zero"),
        ({"token_counts": torch.ones(7, dtype=torch.int64)}, "7 entries"),
        ({"length_counts": torch.ones(40, dtype=torch.int64)}, "longer than max_length 24"),
        ({"length_counts": torch.zeros(25, dtype=torch.int64)}, "all zero"),
        ({"length_counts": -torch.ones(25, dtype=torch.int64)}, "negative"),
    ],
)
def test_bad_statistics_are_refused(copy, tensors, expected):
    file = rewrite_statistics(copy, **tensors)
    message = error_of(copy)
    assert str(file) in message and expected in message, message


def test_a_tokenizer_smaller_than_the_training_counts_is_refused(copy, saved):
    counts = load_file(saved / STATISTICS)["token_counts"].clone()
    counts[30000] = 5  # a count at an id beyond a 20000-token tokenizer
    rewrite_statistics(copy, token_counts=counts)
    tokenizer = json.loads((copy / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    tokenizer["model"]["vocab"] = {k: v for k, v in vocab.items() if v < 20000}
    (copy / "tokenizer.json").write_text(json.dumps(tokenizer))
    message = error_of(copy)
    assert "tokenizer.json" in message and "not the tokenizer" in message, message


def test_truncated_training_state_is_named(copy):
    truncate(copy / TRAINING_STATE)
    with pytest.raises(UsageError) as info:
        load_training_state(copy)
    assert str(copy / TRAINING_STATE) in str(info.value) and "\n" not in str(info.value)


class Foreign:
    pass


def test_a_pickle_in_training_state_is_refused_without_torch_advice(copy):
    torch.save({"step": 1, "payload": Foreign()}, copy / TRAINING_STATE)
    with pytest.raises(UsageError) as info:
        load_training_state(copy)
    message = str(info.value)
    assert "weights_only" not in message and "could run code" in message
    assert str(copy / TRAINING_STATE) in message


def test_a_training_state_of_another_layout_is_refused(copy):
    torch.save({"step": 1}, copy / TRAINING_STATE)
    with pytest.raises(UsageError, match="'optimizer' is missing"):
        load_training_state(copy)


def test_a_damaged_checkpoint_is_one_line_from_a_script(copy, tmp_path, capsys):
    truncate(copy / "model.safetensors")
    code, _, err = run_main("predict.py", "--checkpoint", str(copy), "--output",
                            str(tmp_path / "s.txt"), capsys=capsys)  # fmt: skip
    assert code == 2 and "model.safetensors" in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "tokenizer_config.json"])
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"a": ', "not valid JSON"),
        (b"[1]", "expected a JSON object"),
    ],
)
def test_damaged_json_files_are_named(copy, name, content, expected):
    (copy / name).write_bytes(content)
    message = error_of(copy)
    assert str(copy / name) in message and expected in message, message


def test_an_unknown_task_in_the_settings_is_named(copy):
    file = edit_settings(copy, lambda d: {**d, "task": "chess"})
    message = error_of(copy)
    assert str(file) in message and "task='chess' is not a known task" in message
