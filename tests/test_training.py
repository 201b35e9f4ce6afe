"""Batch plan, collation and learning-rate schedules of the training loop."""

import pytest
import torch

from common.errors import UsageError
from corpora.collate import collate
from training.batches import BatchPlan
from training.optim import lr_scheduler


def test_batch_plan_visits_each_example_once_per_epoch_and_splits_ranks():
    plan = BatchPlan(num_examples=103, micro_batch=4, world_size=2, accumulation=3, seed=1)
    assert plan.global_batch == 24 and plan.steps_per_epoch == 4
    seen = []
    for step in range(4):
        for micro in range(3):
            for rank in range(2):
                seen += plan.indices(step, micro, rank)
    assert len(seen) == len(set(seen)) == 96
    assert plan.indices(4, 0, 0) != plan.indices(0, 0, 0)  # a new permutation next epoch
    assert plan.indices(5, 1, 1) == plan.indices(5, 1, 1)


def test_batch_plan_rejects_a_dataset_smaller_than_one_batch():
    with pytest.raises(UsageError, match="fewer than one global batch"):
        BatchPlan(10, 8, 2, 1, 0)


def test_collate_right_pads():
    x0, mask = collate([[5, 6, 7], [8]], pad_id=0)
    assert x0.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


def test_inverse_sqrt_schedule_matches_the_reference_shape():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = lr_scheduler(optimizer, "invsqrt", 100)
    lrs = []
    for _ in range(400):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[50] == pytest.approx(0.5)
    assert lrs[100] == pytest.approx(1.0)
    assert lrs[400 - 1] == pytest.approx((100 / 399) ** 0.5)
    with pytest.raises(ValueError, match="lr_schedule 'cosine' is unknown"):
        lr_scheduler(optimizer, "cosine", 10)
