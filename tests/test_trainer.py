"""The training step's failure handling."""

import pytest
import torch

from corpora import load_texts, tokenize_texts
from models import DiffusionConfig, build_model
from training.config import TrainingConfig
from training.trainer import MAX_BAD_STEPS, Trainer


def test_twenty_non_finite_steps_in_a_row_stop_training(tiny_bert, tokenizer, toy_txt):
    config = DiffusionConfig(num_steps=50, max_length=24)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True)
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    trainer = Trainer(
        model=model,
        diffusion=config.diffusion(None, tokenizer.mask_token_id, tokenizer.pad_token_id),
        config=config,
        train=TrainingConfig(lr=1e-3, batch_size=4, lr_schedule="constant", warmup_steps=0, seed=0),
        tokenizer=tokenizer,
        train_set=data,
        device=torch.device("cpu"),
    )
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
