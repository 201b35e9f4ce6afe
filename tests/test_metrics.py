"""Metrics: hand-computed values, nltk equality, the toy oracle, generative perplexity."""

import math
import random

import pytest
import torch
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu
from transformers import AutoModelForCausalLM, GPT2Config

from corpora import toy
from evaluation import text_metrics
from evaluation.gen_ppl import generative_perplexity

EDGE = [[], ["dog"], ["the", "the", "the", "the"]]


def test_distinct_and_entropy_by_hand():
    texts = [["a", "a", "b"], [], ["c"]]
    assert text_metrics.dist_1(texts) == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert text_metrics.div_4([["a", "b", "c", "d", "a", "b", "c", "d"], ["x"]]) == pytest.approx(
        4 / 5
    )
    assert text_metrics.div_4([[], ["x"]]) == 0.0
    p = [2 / 4, 1 / 4, 1 / 4]
    assert text_metrics.unigram_entropy(texts) == pytest.approx(-sum(x * math.log(x) for x in p))
    assert text_metrics.mean_length(texts) == pytest.approx(4 / 3)
    assert (
        text_metrics.dist_1([])
        == text_metrics.mean_length([])
        == text_metrics.unigram_entropy([[]])
        == 0
    )


def test_fast_bleu_equals_nltk_corpus_bleu_per_sample():
    refs = [text_metrics.tokenize(s) for s in toy.split("test")[:200]]
    hyps = [text_metrics.tokenize(s) for s in toy.sample(20, 9)] + EDGE
    with pytest.warns(UserWarning):
        slow = [corpus_bleu([refs], [h]) for h in hyps]
    assert text_metrics.mean_bleu(hyps, refs) == pytest.approx(sum(slow) / len(slow), abs=1e-12)
    with pytest.warns(UserWarning):
        slow_self = [
            corpus_bleu([[x for j, x in enumerate(hyps) if j != i]], [h])
            for i, h in enumerate(hyps)
        ]
    assert text_metrics.self_bleu(hyps) == pytest.approx(sum(slow_self) / len(hyps), abs=1e-12)
    assert text_metrics.self_bleu([["a"]]) == 0.0


def test_tokenize_joins_detokenised_punctuation():
    assert (
        text_metrics.tokenize("The baker.")
        == text_metrics.tokenize("the baker .")
        == ["the", "baker", "."]
    )


def test_sentence_bleu_conventions():
    hyp, ref = ["a", "b", "c", "d", "e"], ["a", "b", "c", "d", "x", "y", "z"]
    smooth = SmoothingFunction().method4
    assert text_metrics.sentence_bleu4(hyp, ref, "diffuseq") == sentence_bleu(
        [hyp], ref, smoothing_function=smooth
    )
    assert text_metrics.sentence_bleu4(hyp, ref, "standard") == sentence_bleu(
        [ref], hyp, smoothing_function=smooth
    )
    assert text_metrics.sentence_bleu4(hyp, ref, "diffuseq") != text_metrics.sentence_bleu4(
        hyp, ref, "standard"
    )
    assert text_metrics.sentence_bleu4([], ref) == 0.0


def test_rouge_l_by_hand():
    assert text_metrics.rouge_l(["a b c d"], ["a c d"]) == pytest.approx(6 / 7)
    assert text_metrics.rouge_l([""], ["a"]) == 0.0


def test_candidate_self_bleu_by_hand():
    sets = [[["a", "b", "c", "d"], ["a", "b", "c", "e"]], [["x"]]]
    pair = (text_metrics.sentence_bleu4(sets[0][0], sets[0][1], "standard")
            + text_metrics.sentence_bleu4(sets[0][1], sets[0][0], "standard")) / 2  # fmt: skip
    assert text_metrics.candidate_self_bleu(sets) == pytest.approx(pair)


def test_toy_oracle():
    drawn = toy.sample(100, 4)
    assert toy.oracle(drawn)["toy_grammatical"] == 1.0
    rng = random.Random(0)
    shuffled = []
    for s in drawn:
        words = s.split()
        rng.shuffle(words)
        shuffled.append(" ".join(words))
    assert toy.oracle(shuffled)["toy_grammatical"] < 1.0
    assert toy.oracle(["a dog slept ."])["toy_true_nll_per_sentence"] == pytest.approx(
        -toy.log_prob("a dog slept .")
    )


def test_generative_perplexity_matches_a_manual_computation(tmp_path, tokenizer):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=1, n_head=2)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    texts = ["the dog slept .", "a cat"]
    out = generative_perplexity(texts, str(tmp_path), batch_size=1)
    total, count = 0.0, 0
    for text in texts:
        ids = [
            tokenizer.cls_token_id,
            *tokenizer(text, add_special_tokens=False)["input_ids"],
        ]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1]
        total += torch.nn.functional.cross_entropy(
            logits, torch.tensor(ids[1:]), reduction="sum"
        ).item()
        count += len(ids) - 1
    assert out["gen_ppl"] == pytest.approx(math.exp(total / count), rel=1e-5)
    assert out["gen_ppl_tokens"] == count
