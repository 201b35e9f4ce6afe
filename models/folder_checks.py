"""What a checkpoint folder holds, and the checks that each file is what it should be: every
failure is one ``UsageError`` line naming the file, what is wrong and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from common.errors import UsageError
from common.files import read_text
from models.config import DiffusionConfig

SETTINGS = "diffusion_config.json"
STATISTICS = "corpus_statistics.safetensors"
TIME = "time_embedding.safetensors"
TRAINING_STATE = "training_state.pt"
TOKENIZER = "tokenizer.json"
REQUIRED = ("config.json", "model.safetensors", "tokenizer_config.json", SETTINGS)


def fallback(path: Path) -> str:
    """Advice for a damaged folder: its ``.old`` copy when one exists."""
    old = path.parent / f".{path.name}.old"
    if path.name.startswith(".") or not old.is_dir():
        return "; re-save the folder from its run's last/ or retrain"
    return f"; the folder is damaged: use {old} (the copy before the last save)"


def one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def damaged(file: Path, what: str) -> UsageError:
    return UsageError(f"{file}: {what}{fallback(file.parent)}")


def load_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(file)
    except Exception as error:  # noqa: BLE001 (safetensors' own SafetensorError, OSError...)
        raise damaged(file, f"cannot be read ({one_line(error)})") from None


def load_mlm(path: Path, causal: bool = False) -> torch.nn.Module:
    """The masked LM of a folder (the causal LM with ``causal``); a torn file or a config that
    does not match the weights is one error naming the file (transformers would otherwise warn
    and initialise at random)."""
    auto = AutoModelForCausalLM if causal else AutoModelForMaskedLM
    try:
        mlm, info = auto.from_pretrained(
            path, output_loading_info=True, ignore_mismatched_sizes=True
        )
    except Exception as error:  # noqa: BLE001 (transformers raises many kinds on a bad folder)
        file = (
            "config.json"
            if isinstance(error, (OSError, ValueError, KeyError))
            and ("config" in str(error).lower())
            else "model.safetensors"
        )
        raise damaged(path / file, f"cannot be loaded ({one_line(error)})") from None
    wrong = {k: v for k, v in info.items() if k != "error_msgs" and v}
    if wrong or info.get("error_msgs"):
        listed = "; ".join(f"{k.replace('_keys', '')}: {names(v)}" for k, v in wrong.items())
        raise damaged(
            path / "model.safetensors",
            f"the weights do not match config.json ({listed or info['error_msgs'][0]})",
        )
    return mlm


def names(keys) -> str:
    """A few parameter names of a loading-info list (entries may be (name, shapes) tuples)."""
    names = sorted(str(k[0] if isinstance(k, tuple) else k) for k in keys)
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_counts(file: Path, name: str, values: torch.Tensor, size: int | None) -> None:
    if (
        values.dim() != 1
        or values.is_floating_point()
        or values.is_complex()
        or (values.dtype == torch.bool)
    ):
        finite = (
            ""
            if not values.is_floating_point()
            else ("" if torch.isfinite(values).all() else ", with NaN/inf")
        )
        raise damaged(
            file, f"{name} must be a 1-d integer tensor of counts, found {values.dtype} "
            f"{tuple(values.shape)}{finite}"
        )  # fmt: skip
    if size is not None and values.numel() != size:
        raise damaged(file, f"{name} has {values.numel()} entries, expected {size}")
    if (values < 0).any():
        raise damaged(file, f"{name} has negative counts")


def load_statistics(path: Path, config: DiffusionConfig, vocab: int, tokens: int) -> dict:
    file = path / STATISTICS
    if not file.is_file():
        return {}
    statistics = load_tensors(file)
    counts, lengths = statistics.get("token_counts"), statistics.get("length_counts")
    if counts is not None:
        if counts.dim() == 1 and counts.numel() != vocab:
            raise UsageError(
                f"{file} has {counts.numel()} entries, the model's vocabulary {vocab}: the "
                "folder mixes files of different models"
            )
        check_counts(file, "token_counts", counts, vocab)
        if config.word_freq_lambda > 0 and int(counts.sum()) == 0:
            raise damaged(file, "token_counts are all zero, but the spindle schedule (λ > 0) "
                           "needs the training split's counts")  # fmt: skip
        if tokens < vocab and int(counts[tokens:].sum()) > 0:
            raise damaged(
                path / TOKENIZER,
                f"the tokenizer has {tokens} tokens but the training counts use ids up to "
                f"{int(counts.nonzero().max())}: not the tokenizer the model was trained with",
            )
    if lengths is not None:
        check_counts(file, "length_counts", lengths, None)
        if lengths.numel() > config.max_length + 1 and int(lengths[config.max_length + 1 :].sum()):
            raise damaged(
                file,
                f"length_counts counts sequences longer than max_length {config.max_length} "
                f"of {path / SETTINGS}",
            )
        if int(lengths.sum()) == 0:
            raise damaged(file, "length_counts are all zero")
        statistics["length_counts"] = lengths[: config.max_length + 1]
    return statistics


JSON_FILES = ("config.json", TOKENIZER, "tokenizer_config.json", "special_tokens_map.json")


def check_json_files(path: Path) -> None:
    """The Hugging Face JSON files of a folder are UTF-8 JSON objects (transformers' own errors
    would not say which file)."""
    for name in JSON_FILES:
        file = path / name
        if not file.is_file():
            continue
        try:
            data = json.loads(read_text(file))
        except json.JSONDecodeError as error:
            raise damaged(file, f"is not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise damaged(file, f"expected a JSON object, found a {type(data).__name__}")
