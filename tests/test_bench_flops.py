"""The model FLOPs behind bench/bench.py's MFU (``forward_flops`` in bench/flops.py) against
torch's own count (``torch.utils.flop_counter.FlopCounterMode``) of a denoiser's forward
pass."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForMaskedLM, BertConfig

from bench.flops import forward_flops
from models import DiffusionConfig
from models.checkpoint import denoiser_from


def counted(tokenizer, timestep: str, rows: int, length: int, seed: int):
    """torch's FLOP count of one forward pass and forward_flops' figure for the same call."""
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        attn_implementation="eager")  # fmt: skip
    torch.manual_seed(seed)
    mlm = AutoModelForMaskedLM.from_config(config)
    diffusion = DiffusionConfig(num_steps=50, max_length=length, timestep=timestep)
    model = denoiser_from(mlm, tokenizer, diffusion, "tiny").eval()
    xt = torch.randint(1000, 2000, (rows, length))
    masked = torch.rand(rows, length) < 0.5
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(xt, torch.rand(rows), masked)
    width = length + model.extra_positions
    return counter.get_total_flops(), forward_flops(config, rows, width, int(masked.sum()))


@pytest.mark.parametrize(("rows", "length", "seed"), [(3, 10, 0), (5, 17, 1), (1, 24, 2)])
def test_forward_flops_equal_torchs_count(tokenizer, rows, length, seed):
    torch_count, ours = counted(tokenizer, "none", rows, length, seed)
    assert ours == torch_count


@pytest.mark.parametrize("timestep", ["token", "layerwise"])
def test_time_designs_add_only_their_small_embedding(tokenizer, timestep):
    """The time embedding's own layers are not in forward_flops: under 1% of the count."""
    torch_count, ours = counted(tokenizer, timestep, 4, 16, 3)
    assert ours <= torch_count < 1.01 * ours
