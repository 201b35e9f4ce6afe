"""Pieces of the training loop that main.py wires together: batches, LR, RNG state, logs."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import get_constant_schedule_with_warmup, get_inverse_sqrt_schedule

from models.errors import UsageError

LR_SCHEDULES = ("invsqrt", "constant")


def lr_scheduler(
    optimizer: torch.optim.Optimizer, kind: str, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """``invsqrt``: the reference's linear warm-up then lr · sqrt(warmup / step); ``constant``:
    warm-up then constant."""
    if kind == "invsqrt":
        return get_inverse_sqrt_schedule(optimizer, num_warmup_steps=max(1, warmup_steps))
    if kind == "constant":
        return get_constant_schedule_with_warmup(optimizer, num_warmup_steps=warmup_steps)
    raise UsageError(f"--lr_schedule {kind!r} is unknown: choose one of {', '.join(LR_SCHEDULES)}")


@dataclass(frozen=True)
class BatchPlan:
    """Which examples each optimizer step reads: a pure function of (seed, step), so a resumed
    run sees the same data order without saving any sampler state.

    Epoch e visits a permutation drawn from seed + e, in ``steps_per_epoch`` global batches of
    ``micro_batch · world_size · accumulation`` examples (a last partial batch is dropped).
    Rank r reads micro-batch m of a step from slot ``m · world_size + r`` of the global batch,
    so ranks are disjoint. The permutation of the current epoch is drawn once and kept
    (8 bytes per example), so a step costs O(micro_batch) whatever the dataset size.
    """

    num_examples: int
    micro_batch: int
    world_size: int
    accumulation: int
    seed: int
    _order: list = field(
        default_factory=lambda: [None, None], init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.steps_per_epoch < 1:
            raise UsageError(
                f"the training set has {self.num_examples} examples, fewer than one global batch "
                f"(--batch_size {self.micro_batch} × {self.world_size} processes × "
                f"--accumulation_steps {self.accumulation}); lower them or add data"
            )

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.world_size * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // self.global_batch

    def indices(self, step: int, micro: int, rank: int) -> list[int]:
        """Example indices of micro-batch ``micro`` of ``rank`` at optimizer step ``step``."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        start = offset * self.global_batch + (micro * self.world_size + rank) * self.micro_batch
        return self.order(epoch)[start : start + self.micro_batch].tolist()

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation of epoch ``epoch`` (int64, num_examples), drawn once per epoch."""
        if self._order[0] != epoch:
            self._order[1] = None  # free the previous epoch's before drawing the next
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._order[1] = torch.randperm(self.num_examples, generator=generator)
            self._order[0] = epoch
        return self._order[1]


def collate(
    sequences: list[list[int]], pad_id: int, source_lengths: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists. Returns x0 (B, L) and target_mask (B, L) bool: the real tokens,
    minus each row's first ``source_lengths[b]`` (the fixed source of a seq2seq pair)."""
    length = max(len(s) for s in sequences)
    x0 = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    for row, ids in enumerate(sequences):
        x0[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    positions = torch.arange(length)
    target_mask = positions < torch.tensor([len(s) for s in sequences]).unsqueeze(-1)
    if source_lengths is not None:
        target_mask &= positions >= torch.tensor(source_lengths).unsqueeze(-1)
    return x0, target_mask


def collate_rows(rows: dict, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``collate`` of a dataset slice (``input_ids`` and, for seq2seq, ``source_length``)."""
    return collate(rows["input_ids"], pad_id, rows.get("source_length"))


def noise_generator(seed: int, step: int, micro: int, device: torch.device) -> torch.Generator:
    """The diffusion noise of one micro-batch: a function of (seed, step, micro) only."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * 1_000_003 + step) * 4099 + micro)
    return generator


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) RNG states as plain Python values (picklable
    across processes and loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "torch": bytes(torch.get_rng_state().numpy()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [bytes(s.numpy()) for s in torch.cuda.get_rng_state_all()]
    return state


def _byte_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(_byte_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_byte_tensor(s) for s in state["cuda"]])


def _tuples(value):
    """random.setstate needs tuples; serialisation may have turned them into lists."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class JsonlLog:
    """Append-only ``train_log.jsonl``; on resume, records after the resume step are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        if resume_step is not None and path.is_file():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(f"{line}\n" for line in kept))
            tmp.replace(path)

    def write(self, record: dict) -> None:
        with self.path.open("a") as log:
            log.write(json.dumps(record) + "\n")
