"""The denoiser network, its time designs, backbone resolution and the checkpoint folder."""

from models.backbone import resolve_model_name
from models.checkpoint import (
    Checkpoint,
    build_model,
    is_autoregressive,
    load_checkpoint,
    resolve_checkpoint_dir,
    save_checkpoint,
    special_ids,
)
from models.config import DiffusionConfig
from models.denoiser import DiffusionBert
from models.folder_files import checkpoint_inputs
from models.time_embedding import TIMESTEPS
from models.training_state import load_training_state

__all__ = [
    "TIMESTEPS",
    "Checkpoint",
    "DiffusionBert",
    "DiffusionConfig",
    "build_model",
    "checkpoint_inputs",
    "is_autoregressive",
    "load_checkpoint",
    "load_training_state",
    "resolve_checkpoint_dir",
    "resolve_model_name",
    "save_checkpoint",
    "special_ids",
]
