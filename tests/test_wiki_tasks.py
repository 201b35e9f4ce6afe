"""Real-English seq2seq offline: the wiki-keywords and wiki-next tasks built from
wiki-summaries, the autoregressive twin's seq2seq decoding, coverage, and the per-source
paired comparison."""

import json
import re

import pytest
import torch

from common.errors import UsageError
from conditional_data import encode_pairs, load_pairs
from conditional_data.__main__ import main as conditional_main
from conditional_data.wiki_tasks import (
    MAX_KEYWORDS,
    MIN_KEYWORDS,
    _article_sentences,
    content_words,
    keywords,
)
from corpora import wiki
from evaluation.compare_outputs import compare_columns, paired_difference
from evaluation.seq2seq_scores import coverage
from evaluation.stats import t_quantile
from generation.autoregressive import candidates_left_to_right
from generation.config import SamplingConfig
from models import Checkpoint, DiffusionConfig, build_model
from training.config import TrainingConfig
from training.trainer import Trainer


@pytest.mark.parametrize("task", ["wiki-keywords", "wiki-next"])
def test_every_pair_comes_from_an_article_of_its_own_split(task):
    titles = {s: set(wiki.split_articles(w)) for s, w in
              (("train", "train"), ("valid", "validation"), ("test", "test"))}  # fmt: skip
    assert not (titles["train"] & titles["test"]) and not (titles["valid"] & titles["test"])
    for split in ("valid", "test"):
        own = {s for article in _article_sentences(split) for s in article}
        pairs = load_pairs(task, split)
        assert len(pairs) > 500
        assert set(pairs["trg"]) <= own
        if task == "wiki-next":
            assert set(pairs["src"]) <= own


def test_the_folder_is_the_same_twice_and_keyword_sources_never_hold_their_target(tmp_path, capsys):
    for name in ("a", "b"):
        conditional_main(["wiki-keywords", "--write", str(tmp_path / name)])
    for split in ("train", "valid", "test"):
        first = (tmp_path / "a" / f"{split}.jsonl").read_bytes()
        assert first == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
    rows = [json.loads(line) for line in (tmp_path / "a" / "test.jsonl").read_text().splitlines()]
    for row in rows:
        words = row["src"].split()
        assert MIN_KEYWORDS <= len(words) <= MAX_KEYWORDS and words == sorted(words)
        assert set(words) <= set(content_words(row["trg"]))
        assert row["trg"] not in row["src"] and row["src"] != row["trg"].lower()
    assert "test 1," in capsys.readouterr().out or len(rows) > 500


def test_bad_task_inputs_are_one_line(tmp_path):
    with pytest.raises(UsageError, match="needs at least 3"):
        keywords("It was in the war.")
    with pytest.raises(UsageError, match="unknown"):
        load_pairs("wiki-summary", "test")
    folder = tmp_path / "task"
    folder.mkdir()
    (folder / "test.jsonl").write_text('{"src": "a b c"}\n')
    with pytest.raises(UsageError, match=r"test.jsonl:1: expected an object with string"):
        load_pairs("qqp", "test", str(folder))


def test_coverage_counts_the_keywords_found_as_words():
    assert coverage(["river", "city", "bridge"], "The City has a bridge.") == pytest.approx(2 / 3)
    assert coverage([], "anything") == 0.0


def test_the_per_source_comparison_is_a_paired_t_by_hand():
    a = {"source": ["x", "y", "z", "y"], "bleu": [0.5, 0.2, 0.9, 0.4]}
    b = {"source": ["y", "z", "x", "y"], "bleu": [0.1, 0.6, 0.3, 0.0]}
    figures = compare_columns(a, b)["bleu"]
    diff = [0.5 - 0.3, 0.2 - 0.1, 0.9 - 0.6, 0.4 - 0.0]  # matched by text and occurrence
    mean = sum(diff) / 4
    se = (sum((d - mean) ** 2 for d in diff) / 3) ** 0.5 / 2
    assert figures["difference"] == pytest.approx(mean)
    assert figures["paired_se"] == pytest.approx(se)
    assert figures["interval"][1] == pytest.approx(mean + t_quantile(0.95, 3) * se)
    with pytest.raises(UsageError, match="different sources"):
        compare_columns(a, {"source": ["x", "y", "z", "w"], "bleu": [0.0] * 4})
    assert paired_difference([1.0, 2.0], [1.0, 2.0])["p_value"] == 1.0


AR = DiffusionConfig(objective="ar", word_freq_lambda=0.0, max_length=40, task="toy",
                     max_target_length=16)  # fmt: skip


def toy_pairs(tokenizer, split="train"):
    return encode_pairs(load_pairs("toy", split), tokenizer, "toy", 40, 16)


def seq2seq_trainer(tiny_bert, tokenizer, data):
    torch.manual_seed(0)
    model = build_model(str(tiny_bert), tokenizer, AR, from_scratch=True)
    train = TrainingConfig(lr=1e-3, batch_size=4, lr_schedule="constant", warmup_steps=0,
                           seed=0, bf16=False)  # fmt: skip
    return Trainer(model=model, diffusion=None, config=AR, train=train, tokenizer=tokenizer,
                   train_set=data, device=torch.device("cpu"))  # fmt: skip


def test_the_seq2seq_twin_resumes_exactly(tiny_bert, tokenizer):
    data = toy_pairs(tokenizer)
    whole = seq2seq_trainer(tiny_bert, tokenizer, data)
    losses = [whole.train_step()["loss"] for _ in range(4)]
    first = seq2seq_trainer(tiny_bert, tokenizer, data)
    head = [first.train_step()["loss"] for _ in range(2)]
    weights, state = {k: v.clone() for k, v in first.model.state_dict().items()}, first.state_dict()
    second = seq2seq_trainer(tiny_bert, tokenizer, data)
    second.model.load_state_dict(weights)
    second.load_state_dict(state)
    assert head + [second.train_step()["loss"] for _ in range(2)] == pytest.approx(losses)


@torch.no_grad()
def test_greedy_decoding_is_the_argmax_loop_whatever_the_batch(tiny_bert, tokenizer):
    torch.manual_seed(1)
    model = build_model(str(tiny_bert), tokenizer, AR, from_scratch=True).eval()
    ckpt = Checkpoint(model, tokenizer, AR, None, tiny_bert)
    texts = ["the farmer saw a dog .", "a cow .", "the king sold a ship ."]
    sources = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    greedy = SamplingConfig()
    one = candidates_left_to_right(ckpt, sources, 1, 1, greedy, 6, "greedy")
    many = candidates_left_to_right(ckpt, sources, 1, 8, greedy, 6, "greedy")
    assert one.ids == many.ids
    for source, (got,) in zip(sources, one.ids, strict=True):
        ids, want = [tokenizer.cls_token_id, *source], []
        for _ in range(5):  # at most max_target_length - 1 tokens, cut at [SEP]
            token = model.mlm(input_ids=torch.tensor([ids])).logits[0, -1].argmax().item()
            if token == tokenizer.sep_token_id:
                break
            want.append(token)
            ids.append(token)
        assert got == want
    beams = candidates_left_to_right(ckpt, sources, 3, 8, greedy, 6, "beam", num_beams=3)
    assert [len(c) for c in beams.ids] == [3, 3, 3]
    sampled = SamplingConfig(seed=4, topk=20)
    twice = [candidates_left_to_right(ckpt, sources, 4, 8, sampled, 6).ids for _ in range(2)]
    assert twice[0] == twice[1] and [len(c) for c in twice[0]] == [4, 4, 4]
    with pytest.raises(UsageError, match="--mbr_size 1"):
        candidates_left_to_right(ckpt, sources, 2, 8, greedy, 6, "greedy")


def test_keywords_are_read_in_the_output_by_their_own_rule_and_candidates_pool():
    from evaluation.text_metrics import pooled_distinct

    assert coverage(["well-known", "o'brien"], "O'Brien was a well-known poet.") == 1.0
    same = [["a", "cat", "sat"]] * 4
    assert pooled_distinct(same, 1) == pytest.approx(3 / 12)  # identical candidates: low
    assert pooled_distinct([["a", "cat"], ["the", "dog"]], 1) == 1.0


@pytest.mark.parametrize(
    ("bleu", "message"),
    [([0.1, "0.2", 0.3], "per_source bleu[1] is '0.2', not a score in [0, 1]"),
     ([0.1, float("nan"), 0.3], "per_source bleu[1] is nan, not a score in [0, 1]"),
     ([0.1, True, 0.3], "per_source bleu[1] is True, not a score in [0, 1]"),
     ([0.1, 25.0, 0.3], "per_source bleu[1] is 25.0, not a score in [0, 1]"),
     ([0.1, -0.01, 0.3], "per_source bleu[1] is -0.01, not a score in [0, 1]"),
     (0.5, "per_source bleu is not a list of scores")],
)  # fmt: skip
def test_a_score_that_is_not_a_fraction_is_one_line_naming_it(tmp_path, bleu, message):
    from evaluation.compare_outputs import per_source

    path = tmp_path / "m.json"
    columns = {"source": ["a", "b", "c"], "rouge_l": [0.1, 0.2, 0.3], "bleu": bleu}
    path.write_text(json.dumps({"per_source": columns}))  # NaN as JSON's NaN token
    with pytest.raises(UsageError, match=rf"{path}: {re.escape(message)}"):
        per_source(path)
