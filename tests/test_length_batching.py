"""Length-grouped batches (``BatchPlan(lengths=…)``, ``--group_by_length``): each example once
per epoch, ranks disjoint, a pure function of (seed, step), batches of nearly one length, and
the example lengths read from the arrow offsets."""

import itertools
import math

import numpy as np
import pytest
import torch

from common.errors import UsageError
from corpora.cache import cached_token_ids
from corpora.collate import collate
from evaluation.bounds import sequence_bounds
from evaluation.likelihood import likelihood_record
from evaluation.sentences import noise_keys
from models import DiffusionConfig, build_model
from models.checkpoint import Checkpoint
from training.batches import BatchPlan
from training.config import RESUME_LOCKED, resume_differences
from training.data import fetch, row_lengths, with_rows
from training.resume import resume_state


def _plan(lengths: np.ndarray, group: int = 4, **kw) -> BatchPlan:
    settings = dict(micro_batch=4, world_size=2, accumulation=3, seed=7)
    settings.update(kw)
    return BatchPlan(len(lengths), lengths=lengths, group=group, **settings)


def _epoch(plan: BatchPlan, epoch: int = 0) -> list[list[int]]:
    """Every micro-batch of every rank of one epoch, in step order."""
    first = epoch * plan.steps_per_epoch
    return [
        plan.indices(step, micro, rank)
        for step in range(first, first + plan.steps_per_epoch)
        for micro in range(plan.accumulation)
        for rank in range(plan.world_size)
    ]


@pytest.fixture
def corpus(tmp_path):
    """Lines of 2 to 11 words, so rows have many lengths."""
    words = ["the", "cat", "sat", "on", "a", "mat", "while", "dogs", "barked", "loudly"]
    path = tmp_path / "corpus.txt"
    path.write_text("".join(" ".join(words[: 2 + i % 10]) + " .\n" for i in range(60)))
    return path


LENGTHS = np.random.default_rng(0).integers(1, 33, size=1003)


def test_each_example_once_per_epoch_and_the_same_set_as_ungrouped():
    plan = _plan(LENGTHS, group=5)  # 41 steps: groups of 5 and a last one of 1
    assert plan.steps_per_epoch == 41
    for epoch in range(2):
        flat = [i for batch in _epoch(plan, epoch) for i in batch]
        assert len(flat) == len(set(flat)) == 41 * 24
        plain = BatchPlan(1003, 4, 2, 3, 7)
        ungrouped = {i for batch in _epoch(plain, epoch) for i in batch}
        assert set(flat) == ungrouped  # grouping reorders inside the epoch's batches only


def test_grouped_batches_partition_the_sorted_group():
    plan = _plan(LENGTHS, group=8)
    batches = [plan.batch(0, offset) for offset in range(plan.steps_per_epoch)]
    for first in range(0, 40, 8):
        spans = sorted((LENGTHS[b].min(), LENGTHS[b].max()) for b in batches[first : first + 8])
        for (_, high), (low, _) in itertools.pairwise(spans):
            assert high <= low  # the batches of a group cover disjoint length ranges


def test_grouping_removes_most_padding():
    def padding(plan: BatchPlan) -> float:
        batches = _epoch(plan)
        real = sum(LENGTHS[b].sum() for b in batches)
        computed = sum(LENGTHS[b].max() * len(b) for b in batches)
        return 1 - real / computed

    grouped, ungrouped = padding(_plan(LENGTHS, group=8)), padding(BatchPlan(1003, 4, 2, 3, 7))
    assert ungrouped > 0.3 and grouped < 0.1


def test_a_fresh_plan_gives_the_same_batches_in_any_order():
    plan, fresh = _plan(LENGTHS), _plan(LENGTHS)
    steps = [37, 3, 120, 3, 41, 0]
    expected = [plan.indices(s, 2, 1) for s in steps]
    assert [fresh.indices(s, 2, 1) for s in reversed(steps)] == expected[::-1]
    assert _plan(LENGTHS, seed=8).indices(3, 0, 0) != plan.indices(3, 0, 0)


def test_groups_are_visited_in_a_drawn_order_not_longest_first():
    plan = _plan(LENGTHS, group=40)
    maxima = [LENGTHS[plan.batch(0, offset)].max() for offset in range(40)]
    assert maxima != sorted(maxima, reverse=True) and maxima != sorted(maxima)


def test_bad_lengths_and_groups_are_refused():
    with pytest.raises(ValueError, match="3 lengths for 1003 examples"):
        BatchPlan(1003, 4, 2, 3, 7, lengths=np.ones(3))
    with pytest.raises(ValueError, match="group must be ≥ 1"):
        _plan(LENGTHS, group=0)


def test_row_lengths_are_the_lengths_fetch_reads(tmp_path, corpus, tokenizer):
    data = cached_token_ids(str(corpus), "train", tokenizer, 12, cache_dir=tmp_path)
    rows = np.array([7, 3, 3, 50, 0, 21])
    for dataset in (data, with_rows(data, rows, "test")):
        lengths = row_lengths(dataset)
        assert lengths.shape == (len(dataset),)
        for index in range(len(dataset)):
            _, mask = fetch(dataset, [index], tokenizer.pad_token_id)
            assert lengths[index] == mask.sum()


def test_a_run_saved_before_the_flag_existed_resumed_ungrouped_only():
    before = {name: None for name in RESUME_LOCKED if name != "group_by_length"}
    grouped = before | {"group_by_length": True}
    assert resume_differences(before, grouped) == {"group_by_length": (False, True)}
    assert resume_differences(before, before | {"group_by_length": False}) == {}


def test_resuming_with_another_grouping_is_refused(tmp_path, monkeypatch):
    import training.resume as resume

    saved = {"args": {name: None for name in RESUME_LOCKED} | {"group_by_length": False}}
    monkeypatch.setattr(resume, "resolve_checkpoint_dir", lambda path, flag: tmp_path)
    monkeypatch.setattr(resume, "load_training_state", lambda path, check_lock=True: saved)
    settings = saved["args"] | {"group_by_length": True}
    with pytest.raises(UsageError, match="--group_by_length was False, now True"):
        resume_state(str(tmp_path), settings)
    assert resume_state(str(tmp_path), saved["args"])[1] is saved


@pytest.mark.parametrize("bound", ["discrete", "continuous"])
def test_the_bound_batches_by_length_and_gives_each_sentence_its_own_value(
    tiny_bert, tokenizer, bound
):
    """likelihood_record bounds the longest sentences first (little padding computed), and each
    sentence gets the nats it gets when bounded alone with its own key."""
    config = DiffusionConfig(num_steps=16, max_length=24)
    torch.manual_seed(0)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True).eval()
    counts = torch.ones(len(tokenizer), dtype=torch.long)
    ckpt = Checkpoint(model, tokenizer, config, counts, tiny_bert, None)
    rng = np.random.default_rng(3)
    ids = [rng.integers(1000, 2000, size=n).tolist() for n in rng.integers(2, 20, size=13)]
    shapes = []
    forward = model.forward
    model.forward = lambda xt, *a, **k: shapes.append(xt.shape) or forward(xt, *a, **k)
    cpu = torch.device("cpu")
    record = likelihood_record(
        ckpt, ids, [1] * len(ids), bound, 4, 2, "exact", 4, 5, cpu, estimator="conditioned"
    )
    computed = sum(b * n for b, n in shapes)
    calls_per_batch = len(shapes) / math.ceil(13 / 4)
    assert computed < 1.25 * sum(map(len, ids)) * calls_per_batch
    keys = noise_keys(5, record["sentences"]["id"])
    diffusion = ckpt.diffusion("exact")
    with torch.no_grad():
        alone = [
            sequence_bounds(diffusion, model, [collate([row], 0)], bound, 4, 2, 5, cpu,
                            keys=[key], estimator="conditioned")[0].mean().item()
            for row, key in zip(ids, keys, strict=True)
        ]  # fmt: skip
    assert record["sentences"]["nats"] == pytest.approx(alone, rel=1e-6)  # float32 sums


def test_a_grouped_run_resumes_exactly(tiny_bert, tokenizer, toy_txt):
    """Four grouped steps in one go equal two, a round trip of the weights and the training
    state into a fresh trainer, and two more; the batches are of nearly one length."""
    from corpora import load_texts, tokenize_texts
    from training.config import TrainingConfig
    from training.trainer import Trainer

    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")

    def trainer() -> Trainer:
        config = DiffusionConfig(num_steps=50, max_length=24)
        torch.manual_seed(0)
        return Trainer(
            model=build_model(str(tiny_bert), tokenizer, config, from_scratch=True),
            diffusion=config.diffusion(None, tokenizer.mask_token_id, tokenizer.pad_token_id),
            config=config,
            train=TrainingConfig(
                lr=1e-3,
                batch_size=8,
                lr_schedule="constant",
                warmup_steps=0,
                seed=0,
                group_by_length=True,
            ),
            tokenizer=tokenizer,
            train_set=data,
            device=torch.device("cpu"),
        )

    whole = trainer()
    assert whole.plan.lengths is not None
    losses = [whole.train_step()["loss"] for _ in range(4)]
    first = trainer()
    head = [first.train_step()["loss"] for _ in range(2)]
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    state = first.state_dict()
    torch.manual_seed(123)
    second = trainer()
    second.model.load_state_dict(weights)
    second.load_state_dict(state)
    tail = [second.train_step()["loss"] for _ in range(2)]
    assert head + tail == pytest.approx(losses, rel=1e-5)
    lengths = whole.plan.lengths[whole.plan.indices(2, 0, 0)]
    assert lengths.max() - lengths.min() <= 1
