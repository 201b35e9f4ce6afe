"""The checkpoint directory: alone enough to sample and evaluate.

Layout: the Hugging Face model (``config.json``, ``model.safetensors``), the tokenizer files,
``diffusion_config.json``, ``corpus_statistics.safetensors`` (the training split's token
counts ``token_counts`` int64 (V,) and its length histogram ``length_counts`` int64
(max_length + 1,), when known), ``time_embedding.safetensors`` (time designs
``token``/``layerwise``), and
for resume ``training_state.pt`` (tensors and plain Python values only, loaded with
``weights_only=True``). Directories are written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from common.errors import UsageError
from common.files import atomic_directory, read_text
from diffusion import AbsorbingDiffusion
from models.card import CARD, TRAINING_ARGS, model_card, training_args
from models.config import DiffusionConfig
from models.denoiser import DiffusionBert

SETTINGS = "diffusion_config.json"
STATISTICS = "corpus_statistics.safetensors"
TIME = "time_embedding.safetensors"
TRAINING_STATE = "training_state.pt"
TOKENIZER = "tokenizer.json"
REQUIRED = ("config.json", "model.safetensors", "tokenizer_config.json", SETTINGS)


@dataclass
class Checkpoint:
    model: DiffusionBert
    tokenizer: PreTrainedTokenizerBase
    config: DiffusionConfig
    counts: torch.Tensor | None
    path: Path
    lengths: torch.Tensor | None = None

    def diffusion(self, protocol: str = "exact") -> AbsorbingDiffusion:
        return self.config.diffusion(
            self.counts,
            self.tokenizer.mask_token_id,
            self.tokenizer.pad_token_id,
            protocol,
        )


def special_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """mask, pad, cls and sep ids (RoBERTa's <s>/</s> serve as cls/sep)."""
    ids = {
        "mask_id": tokenizer.mask_token_id,
        "pad_id": tokenizer.pad_token_id,
        "cls_id": tokenizer.cls_token_id,
        "sep_id": tokenizer.sep_token_id,
    }
    missing = [name for name, value in ids.items() if value is None]
    if missing:
        raise UsageError(
            f"tokenizer {tokenizer.name_or_path} has no {', '.join(missing)} token; use a "
            "BERT- or RoBERTa-style masked-LM tokenizer"
        )
    return ids


def denoiser_from(
    mlm: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, config: DiffusionConfig, where: str
) -> DiffusionBert:
    """The ``DiffusionBert`` of a masked LM and its tokenizer, checked to belong together
    (``where`` names the model in the error)."""
    if mlm.config.vocab_size < len(tokenizer):
        raise UsageError(
            f"{where}: the model has {mlm.config.vocab_size} embeddings but the tokenizer "
            f"{len(tokenizer)} tokens; use the tokenizer that belongs to the model (a checkpoint "
            "folder that mixes files of different models is damaged)"
        )
    return DiffusionBert(mlm, config.timestep, config.num_steps, **special_ids(tokenizer))


def build_model(
    backbone: str,
    tokenizer: PreTrainedTokenizerBase,
    config: DiffusionConfig,
    from_scratch: bool,
) -> DiffusionBert:
    """A fresh denoiser from a pretrained masked LM (or its config alone, ``from_scratch``)."""
    if from_scratch:
        mlm = AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained(backbone))
    else:
        mlm = AutoModelForMaskedLM.from_pretrained(backbone)
    check_lengths(mlm.config, config.max_length, config.timestep)
    return denoiser_from(mlm, tokenizer, config, f"the model {backbone}")


def check_lengths(model_config: Any, max_length: int, timestep: str) -> None:
    extra = 3 if timestep == "token" else 2
    limit = model_config.max_position_embeddings - extra
    if getattr(model_config, "model_type", "") in ("roberta", "xlm-roberta"):
        limit -= model_config.pad_token_id + 1
    if max_length < 1 or max_length > limit:
        raise UsageError(
            f"--max_length {max_length} does not fit the model: it has "
            f"{model_config.max_position_embeddings} positions and needs {extra} for [CLS], "
            f"[SEP]{' and the time token' if extra == 3 else ''}; pass --max_length ≤ {limit}"
        )


def save_checkpoint(
    path: Path,
    model: DiffusionBert,
    tokenizer: PreTrainedTokenizerBase,
    config: DiffusionConfig,
    counts: torch.Tensor | None,
    training_state: dict | None = None,
    lengths: torch.Tensor | None = None,
    run: dict | None = None,
) -> None:
    """Write the folder atomically; with ``run`` (``args``: the flags, ``resolved``,
    ``step``, ``best_dev_nats_per_token``) also ``training_args.json`` and the model card
    ``README.md``. Files get the user's umask (safetensors alone would write 0600)."""
    with atomic_directory(path) as tmp:
        model.mlm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config.save(tmp / SETTINGS)
        statistics = {
            name: value.to(torch.int64).contiguous()
            for name, value in (("token_counts", counts), ("length_counts", lengths))
            if value is not None
        }
        if statistics:
            save_file(statistics, tmp / STATISTICS)
        if model.time is not None:
            state = {k: v.detach().contiguous() for k, v in model.time.state_dict().items()}
            save_file(state, tmp / TIME)
        if training_state is not None:
            torch.save(training_state, tmp / TRAINING_STATE)
        if run is not None:
            (tmp / TRAINING_ARGS).write_text(training_args(run), encoding="utf-8")
            (tmp / CARD).write_text(model_card(config, run, path.name), encoding="utf-8")
        apply_umask(tmp)


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (``os.umask`` can
    only be read by setting it, which would race with threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def apply_umask(folder: Path) -> None:
    """Give ``folder`` and the files in it the modes ``open``/``mkdir`` would under the
    current umask (0644 and 0755 under umask 022)."""
    umask = current_umask()
    folder.chmod(0o777 & ~umask)
    for item in folder.rglob("*"):
        item.chmod((0o777 if item.is_dir() else 0o666) & ~umask)


def resolve_checkpoint_dir(path: str | Path, argument: str = "--checkpoint") -> Path:
    """The checkpoint folder, or its ``.old`` copy when a save was interrupted mid-rename."""
    path = Path(path).expanduser()
    old = path.parent / f".{path.name}.old"
    if not path.is_dir() and old.is_dir():
        path = old
    if not path.is_dir():
        raise UsageError(
            f"{argument} {path}: no such directory; pass a checkpoint folder such as "
            "<output_dir>/best or <output_dir>/last written by main.py"
        )
    missing = [name for name in (*REQUIRED, TOKENIZER) if not (path / name).is_file()]
    if missing:
        raise UsageError(
            f"{argument} {path} is incomplete: {', '.join(missing)} missing. Pass a folder "
            f"written by main.py (<output_dir>/best or <output_dir>/last){_fallback(path)}"
        )
    return path


def _fallback(path: Path) -> str:
    """Advice for a damaged folder: its ``.old`` copy when one exists."""
    old = path.parent / f".{path.name}.old"
    if path.name.startswith(".") or not old.is_dir():
        return "; re-save the folder from its run's last/ or retrain"
    return f"; the folder is damaged: use {old} (the copy before the last save)"


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _damaged(file: Path, what: str) -> UsageError:
    return UsageError(f"{file}: {what}{_fallback(file.parent)}")


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(file)
    except Exception as error:  # noqa: BLE001 (safetensors' own SafetensorError, OSError...)
        raise _damaged(file, f"cannot be read ({_one_line(error)})") from None


def _load_mlm(path: Path) -> torch.nn.Module:
    """The masked LM of a folder; a torn file or a config that does not match the weights is
    one error naming the file (transformers would otherwise warn and initialise at random)."""
    try:
        mlm, info = AutoModelForMaskedLM.from_pretrained(
            path, output_loading_info=True, ignore_mismatched_sizes=True
        )
    except Exception as error:  # noqa: BLE001 (transformers raises many kinds on a bad folder)
        file = (
            "config.json"
            if isinstance(error, (OSError, ValueError, KeyError))
            and ("config" in str(error).lower())
            else "model.safetensors"
        )
        raise _damaged(path / file, f"cannot be loaded ({_one_line(error)})") from None
    wrong = {k: v for k, v in info.items() if k != "error_msgs" and v}
    if wrong or info.get("error_msgs"):
        listed = "; ".join(f"{k.replace('_keys', '')}: {_names(v)}" for k, v in wrong.items())
        raise _damaged(
            path / "model.safetensors",
            f"the weights do not match config.json ({listed or info['error_msgs'][0]})",
        )
    return mlm


def _names(keys) -> str:
    """A few parameter names of a loading-info list (entries may be (name, shapes) tuples)."""
    names = sorted(str(k[0] if isinstance(k, tuple) else k) for k in keys)
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _check_counts(file: Path, name: str, values: torch.Tensor, size: int | None) -> None:
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
        raise _damaged(
            file, f"{name} must be a 1-d integer tensor of counts, found {values.dtype} "
            f"{tuple(values.shape)}{finite}"
        )  # fmt: skip
    if size is not None and values.numel() != size:
        raise _damaged(file, f"{name} has {values.numel()} entries, expected {size}")
    if (values < 0).any():
        raise _damaged(file, f"{name} has negative counts")


def _load_statistics(path: Path, config: DiffusionConfig, vocab: int, tokens: int) -> dict:
    file = path / STATISTICS
    if not file.is_file():
        return {}
    statistics = _load_tensors(file)
    counts, lengths = statistics.get("token_counts"), statistics.get("length_counts")
    if counts is not None:
        if counts.dim() == 1 and counts.numel() != vocab:
            raise UsageError(
                f"{file} has {counts.numel()} entries, the model's vocabulary {vocab}: the "
                "folder mixes files of different models"
            )
        _check_counts(file, "token_counts", counts, vocab)
        if config.word_freq_lambda > 0 and int(counts.sum()) == 0:
            raise _damaged(file, "token_counts are all zero, but the spindle schedule (λ > 0) "
                           "needs the training split's counts")  # fmt: skip
        if tokens < vocab and int(counts[tokens:].sum()) > 0:
            raise _damaged(
                path / TOKENIZER,
                f"the tokenizer has {tokens} tokens but the training counts use ids up to "
                f"{int(counts.nonzero().max())}: not the tokenizer the model was trained with",
            )
    if lengths is not None:
        _check_counts(file, "length_counts", lengths, None)
        if lengths.numel() > config.max_length + 1 and int(lengths[config.max_length + 1 :].sum()):
            raise _damaged(
                file,
                f"length_counts counts sequences longer than max_length {config.max_length} "
                f"of {path / SETTINGS}",
            )
        if int(lengths.sum()) == 0:
            raise _damaged(file, "length_counts are all zero")
        statistics["length_counts"] = lengths[: config.max_length + 1]
    return statistics


JSON_FILES = ("config.json", TOKENIZER, "tokenizer_config.json", "special_tokens_map.json")


def _check_json_files(path: Path) -> None:
    """The Hugging Face JSON files of a folder are UTF-8 JSON objects (transformers' own errors
    would not say which file)."""
    for name in JSON_FILES:
        file = path / name
        if not file.is_file():
            continue
        try:
            data = json.loads(read_text(file))
        except json.JSONDecodeError as error:
            raise _damaged(file, f"is not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise _damaged(file, f"expected a JSON object, found a {type(data).__name__}")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Model (eval mode, on ``device``), tokenizer, settings and token counts of a folder,
    every file checked: a damaged one is one ``UsageError`` naming it."""
    path = resolve_checkpoint_dir(path)
    config = DiffusionConfig.load(path / SETTINGS)
    _check_json_files(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as error:  # noqa: BLE001 (tokenizers raises its own exception types)
        raise _damaged(path / TOKENIZER, f"cannot be loaded ({_one_line(error)})") from None
    mlm = _load_mlm(path)
    model = denoiser_from(mlm, tokenizer, config, str(path))
    vocab = model.mlm.config.vocab_size
    if model.time is not None:
        if not (path / TIME).is_file():
            raise UsageError(f"{path}: {TIME} is missing for timestep {config.timestep!r}"
                             f"{_fallback(path)}")  # fmt: skip
        try:
            model.time.load_state_dict(_load_tensors(path / TIME))
        except RuntimeError as error:
            raise _damaged(path / TIME, f"does not fit the model ({_one_line(error)})") from None
    statistics = _load_statistics(path, config, vocab, len(tokenizer))
    counts = statistics.get("token_counts")
    if counts is None and config.word_freq_lambda > 0:
        raise UsageError(f"{path}: {STATISTICS} is missing but the spindle schedule needs it")
    model = model.to(device).eval()
    return Checkpoint(model, tokenizer, config, counts, path, statistics.get("length_counts"))


STATE_KEYS = {
    "step": int,
    "optimizer": dict,
    "scheduler": dict,
    "rng": list,
    "bad_steps": int,
    "skipped_steps": int,
    "args": dict,
}


def load_training_state(path: Path) -> dict:
    """``training_state.pt`` of a ``last/`` folder, loaded with ``weights_only=True`` and its
    layout checked; a torn or foreign file is one error naming it."""
    file = Path(path) / TRAINING_STATE
    if not file.is_file():
        raise UsageError(
            f"--resume_from {path}: no {TRAINING_STATE}; pass <output_dir>/last of a run"
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False, which would run the file's code: never
        raise _damaged(
            file, "holds Python objects besides tensors and plain values, which are not loaded "
            "(they could run code); it was not written by main.py"
        ) from None  # fmt: skip
    except Exception as error:  # noqa: BLE001 (a torn zip raises RuntimeError, EOFError...)
        raise _damaged(file, f"cannot be read ({_one_line(error)})") from None
    if not isinstance(state, dict):
        raise _damaged(file, f"expected a dict of training state, found {type(state).__name__}")
    for key, kind in STATE_KEYS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise _damaged(file, f"{key!r} is missing or not a {kind.__name__}")
    if state["step"] < 0 or not ("best" in state and (
        state["best"] is None or isinstance(state["best"], float)
    )):  # fmt: skip
        raise _damaged(file, "'step' or 'best' is out of range")
    return state
