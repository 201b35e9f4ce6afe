"""The training step's failure handling."""

import pytest
import torch

from corpora import load_texts, tokenize_texts
from models import DiffusionConfig, build_model
from models.trainer import MAX_BAD_STEPS, Trainer
from models.training import BatchPlan, lr_scheduler


def test_twenty_non_finite_steps_in_a_row_stop_training(tiny_bert, tokenizer, toy_txt):
    config = DiffusionConfig(num_steps=50, max_length=24)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True)
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    trainer = Trainer(
        model, config.diffusion(None, tokenizer.mask_token_id, tokenizer.pad_token_id), config,
        tokenizer, None, torch.zeros(25, dtype=torch.long), optimizer,
        lr_scheduler(optimizer, "constant", 0), data, BatchPlan(len(data), 4, 1, 1, 0),
        torch.device("cpu"), 0,
    )  # fmt: skip
    assert trainer.train_step() is not None
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        model.mlm.get_input_embeddings().weight.fill_(float("nan"))
    for _ in range(MAX_BAD_STEPS - 1):
        assert trainer.train_step() is None
    assert trainer.skipped_steps == MAX_BAD_STEPS - 1
    assert all(
        torch.equal(a, b) for a, b in zip(before[1:], list(model.parameters())[1:], strict=True)
    )
    with pytest.raises(FloatingPointError, match="20 steps in a row"):
        trainer.train_step()
