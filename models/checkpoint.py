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

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from common.errors import UsageError
from common.files import atomic_directory
from diffusion import AbsorbingDiffusion
from models.ar_card import ar_model_card
from models.card import CARD, TRAINING_ARGS, model_card, training_args
from models.causal import CausalTwin, build_causal_lm
from models.config import DiffusionConfig
from models.denoiser import DiffusionBert
from models.folder_checks import (
    REQUIRED,
    SETTINGS,
    STATISTICS,
    TIME,
    TOKENIZER,
    TRAINING_STATE,
    check_json_files,
    damaged,
    fallback,
    load_mlm,
    load_statistics,
    load_tensors,
    one_line,
)
from models.folder_files import apply_umask, carry_foreign_files, link_files


@dataclass
class Checkpoint:
    """A loaded checkpoint folder; ``model`` is the denoiser, or the autoregressive twin when
    ``config.autoregressive``."""

    model: DiffusionBert | CausalTwin
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


def is_autoregressive(folder: str | Path) -> bool:
    """Whether the checkpoint ``folder`` (or its ``.old`` copy) holds the autoregressive twin,
    read from its settings alone (cheap: before the model loads); False when there is no
    such folder or settings file (the load then says what is wrong)."""
    try:
        settings = resolve_checkpoint_dir(folder) / SETTINGS
    except UsageError:
        return False
    return DiffusionConfig.load(settings).autoregressive


def causal_from(lm: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, where: str) -> CausalTwin:
    """The ``CausalTwin`` of a causal LM and its tokenizer, checked to belong together."""
    if lm.config.vocab_size < len(tokenizer):
        raise UsageError(
            f"{where}: the model has {lm.config.vocab_size} embeddings but the tokenizer "
            f"{len(tokenizer)} tokens; use the tokenizer that belongs to the model"
        )
    ids = special_ids(tokenizer)
    return CausalTwin(lm, ids["pad_id"], ids["cls_id"], ids["sep_id"])


def build_model(
    backbone: str,
    tokenizer: PreTrainedTokenizerBase,
    config: DiffusionConfig,
    from_scratch: bool,
) -> DiffusionBert | CausalTwin:
    """A fresh denoiser from a pretrained masked LM (or its config alone, ``from_scratch``);
    the autoregressive twin from the same backbone when ``config.autoregressive``."""
    if config.autoregressive:
        lm = build_causal_lm(backbone, from_scratch)
        check_lengths(lm.config, config.max_length, config.timestep)
        return causal_from(lm, tokenizer, f"the model {backbone}")
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
            card = ar_model_card if config.autoregressive else model_card
            (tmp / CARD).write_text(card(config, run, path.name), encoding="utf-8")
        apply_umask(tmp)
        carry_foreign_files(path, tmp)


def link_checkpoint(source: Path, path: Path, config: DiffusionConfig, run: dict) -> None:
    """The checkpoint folder ``source`` again at ``path``, atomically, its files hard links to
    source's (``folder_files.link_files``: no second copy on disk), its model card written
    for ``path`` from ``config`` and ``run`` (as in ``save_checkpoint``)."""
    with atomic_directory(path) as tmp:
        link_files(source, tmp)
        card = ar_model_card if config.autoregressive else model_card
        (tmp / CARD).write_text(card(config, run, path.name), encoding="utf-8")
        carry_foreign_files(path, tmp)


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
            f"written by main.py (<output_dir>/best or <output_dir>/last){fallback(path)}"
        )
    return path


SNAPSHOT_TRIES = 5


def folder_version(path: Path) -> tuple[int, ...] | None:
    """What changes when a save replaces the folder at ``path``: (device, inode, mtime)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Model (eval mode, on ``device``), tokenizer, settings and token counts of a folder,
    every file checked: a damaged one is one ``UsageError`` naming it.

    The files are read as one version: a save (a running main.py) replaces the whole folder by
    a rename, so a read during which the folder changed is repeated (up to
    ``SNAPSHOT_TRIES`` times, then refused), never mixed."""
    for _ in range(SNAPSHOT_TRIES):
        folder = resolve_checkpoint_dir(path)
        before = folder_version(folder)
        try:
            checkpoint = _load_checkpoint(folder, device)
        except UsageError:
            if folder_version(folder) == before:
                raise
            continue  # replaced mid-read: the damage may be the mix of two saves
        if folder_version(folder) == before:
            return checkpoint
    raise UsageError(
        f"--checkpoint {path} was replaced {SNAPSHOT_TRIES} times while it was read (a "
        "running main.py saves into it); copy the folder (cp -r) and pass the copy"
    )


def _load_checkpoint(path: Path, device: str | torch.device) -> Checkpoint:
    config = DiffusionConfig.load(path / SETTINGS)
    check_json_files(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as error:  # noqa: BLE001 (tokenizers raises its own exception types)
        raise damaged(path / TOKENIZER, f"cannot be loaded ({one_line(error)})") from None
    if config.autoregressive:
        model = causal_from(_load_causal(path), tokenizer, str(path))
    else:
        model = denoiser_from(load_mlm(path), tokenizer, config, str(path))
    vocab = model.mlm.config.vocab_size
    if model.time is not None:
        if not (path / TIME).is_file():
            raise UsageError(f"{path}: {TIME} is missing for timestep {config.timestep!r}"
                             f"{fallback(path)}")  # fmt: skip
        try:
            model.time.load_state_dict(load_tensors(path / TIME))
        except RuntimeError as error:
            raise damaged(path / TIME, f"does not fit the model ({one_line(error)})") from None
    statistics = load_statistics(path, config, vocab, len(tokenizer))
    counts = statistics.get("token_counts")
    if counts is None and config.word_freq_lambda > 0:
        raise UsageError(f"{path}: {STATISTICS} is missing but the spindle schedule needs it")
    model = model.to(device).eval()
    return Checkpoint(model, tokenizer, config, counts, path, statistics.get("length_counts"))


def _load_causal(path: Path) -> torch.nn.Module:
    """The causal LM of an autoregressive checkpoint; a config that is not a decoder is one
    line naming the file."""
    lm = load_mlm(path, causal=True)
    if not getattr(lm.config, "is_decoder", False):
        raise damaged(path / "config.json", "is not a decoder (is_decoder false) but "
                      f"{SETTINGS} says objective ar: the folder mixes two models")  # fmt: skip
    return lm
