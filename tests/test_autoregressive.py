"""The autoregressive twin (main.py --objective ar): its loss against a hand-computed causal
NLL, exact resume, the checkpoint as a plain causal LM, its exact-likelihood records, pairing
them with a bound, left-to-right sampling, and the one-line refusals."""

import importlib
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from common.errors import UsageError
from corpora import load_texts, tokenize_texts
from corpora.collate import collate
from evaluation.compare import check_comparable, paired
from evaluation.gen_ppl import generative_perplexity
from generation.autoregressive import generate_left_to_right
from generation.config import SamplingConfig
from models import DiffusionConfig, build_model, load_checkpoint
from models.causal import CausalTwin, ar_loss
from tests.test_cli import run_main
from training.config import TrainingConfig
from training.trainer import Trainer

AR = DiffusionConfig(objective="ar", word_freq_lambda=0.0, max_length=24)


def twin(tiny_bert, tokenizer, seed: int = 0) -> CausalTwin:
    torch.manual_seed(seed)
    return build_model(str(tiny_bert), tokenizer, AR, from_scratch=True).eval()


def prefix_nll(model: CausalTwin, row: list[int], scored: list[bool]) -> float:
    """By hand: ``[CLS] row [SEP]``, each predicted token scored by a forward pass over its
    prefix alone (so no later token can leak in), summed over the scored ones and the end."""
    ids = [model.cls_id, *row, model.sep_id]
    total = 0.0
    for j in range(1, len(ids)):
        if j <= len(row) and not scored[j - 1]:
            continue
        prefix = torch.tensor([ids[:j]])
        logits = model.mlm(input_ids=prefix).logits[0, -1].double()
        total -= logits.log_softmax(-1)[ids[j]].item()
    return total


@torch.no_grad()
def test_the_loss_is_the_causal_nll_computed_by_hand(tiny_bert, tokenizer):
    model = twin(tiny_bert, tokenizer)
    rows = [[2023, 2003, 1037, 3231, 1012], [7592, 2088], [2023, 2003, 2200]]
    x0, target_mask = collate(rows, tokenizer.pad_token_id, source_lengths=[0, 0, 1])
    nll, tokens = model.sequence_nll(x0, target_mask)
    hand = [
        prefix_nll(model, r, m[: len(r)].tolist()) for r, m in zip(rows, target_mask, strict=True)
    ]
    assert nll.tolist() == pytest.approx(hand, rel=1e-5)
    assert tokens.tolist() == [5, 2, 2]  # the target tokens; the end token is not counted
    out = ar_loss(model, x0, target_mask)
    assert out.total.item() == pytest.approx(sum(hand), rel=1e-5)
    assert out.loss.item() == pytest.approx(sum(hand) / 3, rel=1e-5)
    assert out.num_masked.item() == 5 + 2 + 2 + 3  # the scored tokens and one end per row


def test_the_seq2seq_source_and_the_fill_after_the_end_are_never_scored(tiny_bert, tokenizer):
    model = twin(tiny_bert, tokenizer)
    sep = tokenizer.sep_token_id
    rows = [[5, 6, 7, 8, 9], [5, 6], [5, 7, 8, sep, sep], [5, 6, sep]]
    x0, target_mask = collate(rows, 0, source_lengths=[2, 1, 1, 2])
    assert model.predicted(x0, target_mask).tolist() == [
        [False, False, True, True, True, True],  # the target, then the appended end
        [False, True, True, False, False, False],
        [False, True, True, True, False, False],  # the target's own first [SEP] ends it
        [False, False, True, False, False, False],
    ]


def ar_trainer(tiny_bert, tokenizer, data) -> Trainer:
    model = twin(tiny_bert, tokenizer)
    return Trainer(
        model=model,
        diffusion=None,
        config=AR,
        train=TrainingConfig(
            lr=1e-3, batch_size=4, lr_schedule="constant", warmup_steps=0, seed=0, bf16=False
        ),
        tokenizer=tokenizer,
        train_set=data,
        device=torch.device("cpu"),
    )


def test_ar_training_resumes_exactly(tiny_bert, tokenizer, toy_txt):
    data = tokenize_texts(load_texts(str(toy_txt)), tokenizer, 24, "toy")
    whole = ar_trainer(tiny_bert, tokenizer, data)
    losses = [whole.train_step()["loss"] for _ in range(4)]
    first = ar_trainer(tiny_bert, tokenizer, data)
    head = [first.train_step()["loss"] for _ in range(2)]
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    state = first.state_dict()
    torch.manual_seed(123)
    second = ar_trainer(tiny_bert, tokenizer, data)
    second.model.load_state_dict(weights)
    second.load_state_dict(state)
    tail = [second.train_step()["loss"] for _ in range(2)]
    assert head + tail == pytest.approx(losses, rel=1e-6)
    for a, b in zip(whole.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def ar_run(tiny_bert, toy_txt, tmp_path_factory):
    """main.py --objective ar on the toy text: 8 steps, a dev evaluation at 4 and 8."""
    out = tmp_path_factory.mktemp("ar-run")
    main = importlib.import_module("main")
    main.main([
        "--objective", "ar", "--model_name_or_path", str(tiny_bert), "--from_scratch", "true",
        "--dataset", str(toy_txt), "--batch_size", "8", "--max_length", "24", "--dev_size",
        "16", "--lr", "2e-3", "--max_steps", "8", "--eval_steps", "4", "--warmup_steps", "0",
        "--logging_steps", "2", "--output_dir", str(out), "--fitlog_dir", "", "--device", "cpu",
        "--quiet",
    ])  # fmt: skip
    return out


def test_the_folder_is_a_plain_causal_lm_and_scores_text(ar_run):
    folder = ar_run / "best"
    lm = AutoModelForCausalLM.from_pretrained(folder)
    assert type(lm).__name__ == "BertLMHeadModel" and lm.config.is_decoder
    card = (folder / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "Autoregressive twin" in card
    log = [json.loads(line) for line in (ar_run / "train_log.jsonl").read_text().splitlines()]
    assert [r["dev_bound"] for r in log if "dev_bound" in r] == ["exact", "exact"]
    ckpt = load_checkpoint(folder)
    texts = ["the old farmer saw a dog.", "a cat."]
    scored = generative_perplexity(texts, str(folder))
    # by hand: [CLS] then the text's tokens, each from its prefix, no end token
    nats, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = ckpt.tokenizer(text, add_special_tokens=False)["input_ids"]
            full = prefix_nll(ckpt.model, ids, [True] * len(ids))
            end = prefix_nll(ckpt.model, ids, [False] * len(ids))
            nats, count = nats + full - end, count + len(ids)
    assert scored["gen_ppl_tokens"] == count
    assert scored["gen_nats_per_token"] == pytest.approx(nats / count, rel=1e-5)


def test_evaluations_draw_samples_and_their_perplexity_under_the_twin(
    ar_run, tiny_bert, toy_txt, tmp_path
):
    """The twin's evaluations draw samples left to right; a diffusion run given the twin as
    --eval_gen_ppl_model logs its samples' generative perplexity, the figure
    evaluation.gen_ppl computes for them."""
    log = [json.loads(line) for line in (ar_run / "train_log.jsonl").read_text().splitlines()]
    drawn = [r for r in log if "dev_samples" in r]
    assert [len(r["dev_samples"]) for r in drawn] == [4, 4]
    assert {r["dev_sampler"] for r in drawn} == {"left-to-right"}
    out = tmp_path / "diffusion"
    importlib.import_module("main").main([
        "--model_name_or_path", str(tiny_bert), "--from_scratch", "true", "--dataset",
        str(toy_txt), "--word_freq_lambda", "0", "--batch_size", "8", "--max_length", "24",
        "--dev_size", "16", "--num_steps", "100", "--max_steps", "2", "--eval_steps", "2",
        "--eval_samples", "3", "--eval_sample_steps", "10", "--eval_gen_ppl_model",
        str(ar_run / "best"), "--output_dir", str(out), "--fitlog_dir", "", "--quiet",
    ])  # fmt: skip
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    (dev,) = [r for r in log if "dev_samples" in r]
    assert len(dev["dev_samples"]) == 3 and dev["dev_sample_steps"] == 10
    again = generative_perplexity(dev["dev_samples"], str(ar_run / "best"))
    assert dev["dev_gen_ppl"] == pytest.approx(again["gen_ppl"], rel=1e-6)
    assert "Their generative perplexity under" in (out / "best" / "README.md").read_text()


def test_scoring_builds_no_autograd_graph(ar_run, monkeypatch):
    """generative_perplexity runs its causal LM without gradients (as sampling does)."""
    from transformers import AutoModelForCausalLM as Auto

    modes, load = [], Auto.from_pretrained

    def loaded(*args, **kwargs):
        model = load(*args, **kwargs)
        model.register_forward_hook(lambda *_: modes.append(torch.is_grad_enabled()))
        return model

    monkeypatch.setattr("evaluation.gen_ppl.AutoModelForCausalLM.from_pretrained", loaded)
    generative_perplexity(["a cat sat."], str(ar_run / "best"))
    assert modes == [False]


def test_a_masked_lm_is_refused_as_gen_ppl_model(tiny_bert):
    with pytest.raises(UsageError, match=r"masked LM .*not a causal LM"):
        generative_perplexity(["a cat."], str(tiny_bert))


def test_compute_elbo_writes_the_exact_nll_per_sentence(ar_run, toy_txt, tmp_path, capsys):
    out = tmp_path / "nll.json"
    args = ["--checkpoint", str(ar_run / "best"), "--dataset", str(toy_txt), "--split",
            "train", "--max_examples", "12", "--batch_size", "5", "--json", str(out)]  # fmt: skip
    code, stdout, _ = run_main("compute_elbo", *args, capsys=capsys)
    assert code == 0 and "exact NLL of the autoregressive twin" in stdout
    record = json.loads(out.read_text())
    assert record["bound"] == "exact" and record["given_length"] is None
    ckpt = load_checkpoint(ar_run / "best")
    data = tokenize_texts(load_texts(str(toy_txt), "train"), ckpt.tokenizer, 24, str(toy_txt))
    rows = data["input_ids"][:12]
    with torch.no_grad():
        hand = [prefix_nll(ckpt.model, r, [True] * len(r)) for r in rows]
    assert record["sentences"]["nats"] == pytest.approx(hand, rel=1e-5)
    assert record["sentences"]["tokens"] == [len(r) for r in rows]
    full = record["full_sequence"]
    assert full["nats_per_token"] == pytest.approx(sum(hand) / sum(map(len, rows)), rel=1e-6)


def records(nats_a, length_a, nats_b, tokens, words):
    ids = [f"{i}:x" for i in range(len(tokens))]
    a = {"bound": "continuous", "dataset": "d", "split": "test", "noise": {}, "num_steps": 8,
         "sentences": {"id": ids, "tokens": tokens, "words": words, "nats": nats_a,
                       "length_nats": length_a}}  # fmt: skip
    b = {"bound": "exact", "dataset": "d", "split": "test", "noise": None, "num_steps": None,
         "sentences": {"id": ids[::-1], "tokens": tokens[::-1], "words": words[::-1],
                       "nats": nats_b[::-1]}}  # fmt: skip
    return a, b


def test_a_bound_pairs_with_an_exact_nll_on_the_whole_sequence():
    nats_a, length_a, nats_b = [10.0, 20.0, 7.0], [1.0, 2.0, 0.5], [9.0, 21.0, 6.0]
    tokens, words = [4, 8, 3], [3, 6, 2]
    a, b = records(nats_a, length_a, nats_b, tokens, words)
    figures = paired(a, b)
    diff = [x + m - y for x, m, y in zip(nats_a, length_a, nats_b, strict=True)]  # 2, 1, 1.5
    assert figures["nats"] == "full_sequence"
    assert figures["per_word"]["difference"] == pytest.approx(sum(diff) / sum(words))
    assert figures["per_token"]["difference"] == pytest.approx(sum(diff) / sum(tokens))
    del a["sentences"]["length_nats"]
    with pytest.raises(UsageError, match="length_nats is missing"):
        paired(a, b)


def test_left_to_right_sampling_ends_at_the_end_token_and_the_cache_changes_nothing(ar_run):
    ckpt = load_checkpoint(ar_run / "best")
    sampling = SamplingConfig(seed=3, topk=50, topp=0.95, temperature=0.9)
    cached = generate_left_to_right(ckpt, 6, 0, 4, sampling)
    uncached = generate_left_to_right(ckpt, 6, 0, 4, sampling, use_cache=False)
    assert cached.ids == uncached.ids and len(cached.ids) == 6
    sep = ckpt.tokenizer.sep_token_id
    assert all(sep not in ids and len(ids) <= 24 for ids in cached.ids)
    fixed = generate_left_to_right(ckpt, 3, 5, 3, sampling)
    assert [len(ids) for ids in fixed.ids] == [5, 5, 5]


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        ("main", ["--objective", "ar", "--schedule", "linear"], "--schedule is ignored"),
        ("main", ["--objective", "ar", "--word_freq_lambda", "0.3"], "--word_freq_lambda is"),
        ("main", ["--objective", "ar", "--timestep", "layerwise"], "--timestep is ignored"),
        ("compute_elbo", ["--estimator", "antithetic"], "--estimator is ignored"),
        ("compute_elbo", ["--bound", "continuous"], "--bound is ignored"),
        ("predict", ["--sampler", "ancestral"], "--sampler is ignored"),
        ("predict", ["--num_steps", "8"], "--num_steps is ignored"),
        ("predict_downstream_condition", ["--cfg_weight", "1"], "--cfg_weight is ignored"),
        ("predict_downstream_condition", [], "trained unconditionally"),
    ],
)
def test_diffusion_only_settings_are_one_line(ar_run, tmp_path, capsys, script, argv, message):
    if script != "main":
        argv = ["--checkpoint", str(ar_run / "best"), *argv]
    if script == "main":
        argv = [*argv, "--dataset", "toy", "--output_dir", str(tmp_path / "o")]
    if script == "predict_downstream_condition":
        argv = [*argv, "--output_dir", str(tmp_path / "gen")]
    code, _, err = run_main(script, *argv, capsys=capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_autoregressive_config_has_no_diffusion():
    with pytest.raises(UsageError, match="no diffusion process"):
        AR.diffusion(None, 103, 0)


def test_the_run_pictures_skip_the_noise_schedule(ar_run, tmp_path, capsys):
    from evaluation import plots

    written = plots.main([str(ar_run), "--out", str(tmp_path / "plots")])
    assert set(written) == {"training.png"}
    assert "skipped spindle.png: an autoregressive checkpoint" in capsys.readouterr().out


def test_a_backbone_without_a_causal_class_is_one_line(tmp_path, tokenizer):
    from transformers import DistilBertConfig

    from models.causal import build_causal_lm

    DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2,
                     hidden_dim=64).save_pretrained(tmp_path)  # fmt: skip
    with pytest.raises(UsageError, match="has no causal-LM class"):
        build_causal_lm(str(tmp_path), from_scratch=True)


def test_a_non_bound_never_pairs_with_an_exact_nll_and_is_no_proposal(tmp_path):
    from evaluation.records import read_proposal

    nats, length, exact = [10.0, 20.0, 7.0], [1.0, 2.0, 0.5], [9.0, 21.0, 6.0]
    a, b = records(nats, length, exact, [4, 8, 3], [3, 6, 2])
    a.update(valid_bound=False, protocol="official")
    with pytest.raises(UsageError, match="is not a bound"):
        check_comparable(a, b, "A", "B")
    b["given_length"] = None
    path = tmp_path / "ar.json"
    path.write_text(json.dumps(b))
    with pytest.raises(UsageError, match=r"noise\.proposal is empty"):
        read_proposal(path)


def test_seq2seq_rows_count_their_target_tokens_without_the_fill(tiny_bert, tokenizer):
    model = twin(tiny_bert, tokenizer)
    sep = tokenizer.sep_token_id
    x0, target_mask = collate([[5, 6, 7, sep, sep, sep]], 0, source_lengths=[1])
    with torch.no_grad():
        _, tokens = model.sequence_nll(x0, target_mask)
    assert tokens.tolist() == [2]


def test_a_twin_left_as_old_is_still_known_as_one(ar_run, tmp_path):
    import shutil

    from models import is_autoregressive

    shutil.copytree(ar_run / "best", tmp_path / ".last.old")
    assert is_autoregressive(tmp_path / "last") and not is_autoregressive(tmp_path / "none")
