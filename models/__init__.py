"""The denoiser network and its checkpoint directory."""

from models.backbone import resolve_model_name
from models.checkpoint import (
    Checkpoint,
    atomic_directory,
    build_model,
    load_checkpoint,
    load_training_state,
    resolve_checkpoint_dir,
    save_checkpoint,
    special_ids,
    write_json,
    write_text,
)
from models.config import DiffusionConfig
from models.denoiser import DiffusionBert
from models.errors import UsageError, exit_on_usage_error
from models.time_embedding import TIMESTEPS

__all__ = [
    "TIMESTEPS",
    "Checkpoint",
    "DiffusionBert",
    "DiffusionConfig",
    "UsageError",
    "atomic_directory",
    "build_model",
    "exit_on_usage_error",
    "load_checkpoint",
    "load_training_state",
    "resolve_checkpoint_dir",
    "resolve_model_name",
    "save_checkpoint",
    "special_ids",
    "write_json",
    "write_text",
]
