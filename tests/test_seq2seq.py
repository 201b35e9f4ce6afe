"""Seq2seq: task data and prompts, the target-only loss, guidance, MBR, conditional sampling."""

import json
import math

import pytest
import torch

from common.errors import UsageError
from conditional_data import encode_pairs, encode_sources, get_task, load_pairs, toy
from corpora import toy as grammar
from corpora.collate import collate, collate_rows
from diffusion import GuidedDenoiser, Noise, d3pm_loss, make_sampler, mdlm_loss, sample
from evaluation import text_metrics
from generation.seq2seq import conditional_batch, cut_target
from models import DiffusionConfig, build_model
from tests import dense_reference as ref
from tests.conftest import on_device
from tests.enumeration import make_diffusion


def test_passive_voice_of_both_verb_kinds():
    assert toy.passive("the farmer saw a dog .") == "a dog was seen by the farmer ."
    assert (
        toy.passive("the old king gave a red apple to the queen .")
        == "a red apple was given to the queen by the old king ."
    )
    with pytest.raises(ValueError, match="not a transitive"):
        toy.passive("a dog slept .")


def test_toy_splits_are_fixed_disjoint_and_transitive():
    splits = {name: toy.pairs(name) for name in ("train", "valid", "test")}
    assert {k: len(v["src"]) for k, v in splits.items()} == toy.SPLIT_SIZES
    assert toy.pairs("test") == splits["test"]
    test, valid, train = (set(splits[n]["src"]) for n in ("test", "valid", "train"))
    assert len(test) == 200 and len(valid) == 500 and not (test & valid) and not (train & test)
    assert not train & valid
    for src, trg in zip(splits["valid"]["src"], splits["valid"]["trg"], strict=True):
        assert math.isfinite(grammar.log_prob(src))
        words = [toy.PARTICIPLES.get(w, w) for w in grammar.words_of(src)]
        assert sorted([*words, "was", "by"]) == sorted(grammar.words_of(trg))


def test_prompts_of_the_reference_code():
    assert get_task("qqp").format("A") == '"A" is equal to "'
    assert get_task("QT").format("A") == " Answer: A Question: "
    assert get_task("wiki_alignment").format("A") == '"A" can be summarized as: '
    assert get_task("CC").format("A") == "A - "
    with pytest.raises(UsageError, match="--task 'paws' is unknown"):
        get_task("paws")


def _folder(tmp_path, valid_name="valid.jsonl", bad_line=None):
    rows = [{"src": f"question {i}", "trg": f"paraphrase {i}"} for i in range(3)]
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = [json.dumps(r) for r in rows]
    if bad_line is not None:
        lines[1] = bad_line
    (tmp_path / valid_name).write_text("\n".join(lines) + "\n")
    return tmp_path


def test_diffuseq_folders_load_with_val_or_valid(tmp_path):
    folder = _folder(tmp_path, "val.jsonl")
    pairs = load_pairs("qqp", "validation", str(folder))
    assert pairs["src"][:] == ["question 0", "question 1", "question 2"]
    assert load_pairs("qqp", "test", str(folder))["trg"][2] == "paraphrase 2"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"src": "a", "trg": ', "valid.jsonl:2: not valid JSON"),
        ('{"src": "a"}', 'valid.jsonl:2: expected an object with string "src" and "trg"'),
        ('["a", "b"]', 'valid.jsonl:2: expected an object with string "src" and "trg"'),
    ],
)
def test_malformed_jsonl_line_is_named(tmp_path, bad, message):
    folder = _folder(tmp_path, bad_line=bad)
    with pytest.raises(UsageError, match=message):
        load_pairs("QT", "valid", str(folder))


def test_missing_data_is_explained(tmp_path):
    with pytest.raises(UsageError, match="--task qqp needs --data_dir"):
        load_pairs("qqp", "train")
    with pytest.raises(UsageError, match="no such folder"):
        load_pairs("CC", "train", str(tmp_path / "nothing"))
    with pytest.raises(UsageError, match=r"no train\.jsonl"):
        load_pairs("CC", "train", str(tmp_path))
    with pytest.raises(UsageError, match="--split 'dev2' is unknown"):
        load_pairs("toy", "dev2")


def test_token_layout_source_then_target_region(tokenizer):
    pairs = load_pairs("toy", "test").select(range(4))
    encoded = encode_pairs(pairs, tokenizer, "toy", 48, 16)
    sep = tokenizer.sep_token_id
    for row, src, trg in zip(encoded, pairs["src"], pairs["trg"], strict=True):
        source = tokenizer(get_task("toy").format(src), add_special_tokens=False)["input_ids"]
        target = tokenizer(trg, add_special_tokens=False)["input_ids"]
        assert row["source_length"] == len(source)
        assert row["input_ids"] == source + target + [sep] * (16 - len(target))


def test_long_sources_and_targets_are_truncated_around_the_prompt(tokenizer):
    import datasets

    pairs = datasets.Dataset.from_dict({"src": ["one two three " * 20], "trg": ["four " * 40]})
    (row,) = encode_pairs(pairs, tokenizer, "qqp", 32, 8)
    suffix = tokenizer('" is equal to "', add_special_tokens=False)["input_ids"]
    assert len(row["input_ids"]) == 32 and row["source_length"] == 24
    assert row["input_ids"][24 - len(suffix) : 24] == suffix
    sep = tokenizer.sep_token_id
    assert row["input_ids"][-1] == sep and row["input_ids"][-2] != sep  # 7 tokens, then [SEP]
    assert encode_sources(["one two three " * 20], tokenizer, "qqp", 32, 8) == [
        row["input_ids"][:24]
    ]
    with pytest.raises(UsageError, match="--max_length 12 leaves no room for the source"):
        encode_pairs(pairs, tokenizer, "qqp", 12, 8)
    with pytest.raises(UsageError, match="--max_target_length must be ≥ 2"):
        encode_pairs(pairs, tokenizer, "qqp", 32, 1)


def test_collate_masks_only_the_target_region():
    x0, target = collate_rows({"input_ids": [[5, 6, 7, 8], [9, 10]], "source_length": [1, 1]}, 0)
    assert x0.tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]]
    assert target.tolist() == [[False, True, True, True], [False, True, False, False]]


class ContextFree:
    """A denoiser whose prediction at a position depends on nothing but the position; records
    every (x_t, masked) it is given."""

    def __init__(self, vocab: int, length: int):
        self.table = torch.randn(length, vocab, generator=torch.Generator().manual_seed(3))
        self.table[:, ref.MASK] = float("-inf")
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, xt, u, masked):
        self.seen.append((xt.clone(), masked.clone()))
        rows = self.table.log_softmax(-1).expand(xt.shape[0], -1, -1)
        return rows[masked]


@pytest.mark.parametrize("objective", ["d3pm", "mdlm"])
def test_loss_ignores_source_and_padding(objective, device):
    """Rows with sources and padding of different lengths: only target positions are masked
    and scored, so changing source or padding tokens leaves the loss unchanged, and the batch
    loss is the sum of the rows' losses."""
    diffusion = make_diffusion(0.3, 8)
    net = on_device(ContextFree(ref.V, 7), device)
    x0, target = collate([[1, 2, 3, 4, 5], [2, 3, 4], [5, 4, 3, 2, 1, 1, 2]], 0, [2, 1, 4])
    x0, target = x0.to(device), target.to(device)
    noise = Noise.draw(3, 7, torch.Generator(device).manual_seed(0), device)
    noise.time = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64, device=device)

    def loss(x, rows=slice(None)):
        n = Noise(noise.time[rows], noise.mask[rows])
        if objective == "d3pm":
            return d3pm_loss(diffusion, net, x[rows], target[rows], 0.01, True, noise=n).total
        return mdlm_loss(diffusion, net, x[rows], target[rows], noise=n).total

    base = loss(x0)
    for xt, masked in net.seen:
        assert not (masked & ~target).any()
        assert torch.equal(xt[~target], x0[~target])
    changed = x0.clone()
    changed[~target] = (changed[~target] % 5) + 1
    assert torch.equal(loss(changed), base)
    rows = sum(loss(x0, slice(i, i + 1)) for i in range(3))
    assert torch.allclose(rows, base, rtol=1e-6)
    assert base > 0


def test_guidance_combines_conditional_and_source_masked_predictions(tiny_bert, tokenizer):
    torch.manual_seed(0)
    config = DiffusionConfig(num_steps=100, max_length=32)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True).eval()
    sources = [[2023, 2003, 1037], [1996, 3899]]
    xT, target = conditional_batch(sources, 4, tokenizer.mask_token_id, tokenizer.pad_token_id)
    source_mask = (xT != tokenizer.pad_token_id) & ~target
    u = torch.full((2,), 0.7)
    calls = []

    def counted(xt, u, masked):
        calls.append(xt.shape[0])
        return model(xt, u, masked)

    with torch.no_grad():
        plain = model(xT, u, target)
        assert torch.equal(GuidedDenoiser(counted, source_mask, 103, 0.0)(xT, u, target), plain)
        guided = GuidedDenoiser(counted, source_mask, tokenizer.mask_token_id, 2.0)(xT, u, target)
        uncond = model(xT.masked_fill(source_mask, tokenizer.mask_token_id), u, target)
    assert calls == [2, 4]
    expected = (3.0 * plain - 2.0 * uncond).nan_to_num(neginf=float("-inf"))
    expected[:, tokenizer.mask_token_id] = float("-inf")
    assert torch.allclose(guided, expected.log_softmax(-1), atol=1e-5)
    assert torch.isneginf(guided[:, tokenizer.mask_token_id]).all()
    assert not torch.allclose(guided, plain, atol=1e-3)
    with pytest.raises(ValueError, match=r"weight \(guidance\) must be ≥ 0") as error:
        GuidedDenoiser(model, source_mask, 103, -1.0)
    assert error.value.parameter == "weight"


@pytest.mark.parametrize("weight", [0.0, 1.5])
def test_sampling_keeps_the_source_and_fills_the_target(tiny_bert, tokenizer, weight, device):
    torch.manual_seed(0)
    config = DiffusionConfig(num_steps=20, max_length=32)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True).eval().to(device)
    diffusion = config.diffusion(None, tokenizer.mask_token_id, tokenizer.pad_token_id)
    sources = [[2023, 2003, 1037, 3899], [1996], [2009, 2001]]
    xT, target = conditional_batch(sources, 5, tokenizer.mask_token_id, tokenizer.pad_token_id)
    xT, target = xT.to(device), target.to(device)
    source_mask = (xT != tokenizer.pad_token_id) & ~target
    guided = GuidedDenoiser(model, source_mask, tokenizer.mask_token_id, weight)
    with torch.no_grad():
        sampler = make_sampler("ancestral")
        out = sample(diffusion, guided, xT, target, sampler, 20,
                     generator=torch.Generator(device).manual_seed(1))  # fmt: skip
        plain = sample(diffusion, model, xT, target, sampler, 20,
                       generator=torch.Generator(device).manual_seed(1))  # fmt: skip
    assert out.x0.device == xT.device
    assert torch.equal(out.x0[~target], xT[~target])
    assert not (out.x0[target] == tokenizer.mask_token_id).any()
    if weight == 0.0:  # no guidance: the very same draws as sampling the model directly
        assert torch.equal(out.x0, plain.x0)


def test_mbr_picks_the_consensus_candidate():
    candidates = [
        "birds fly south in the cold winter months",
        "the dog saw a small cat in the garden",
        "the dog saw a small cat in the old garden today",
        "the dog saw a small cat",
    ]
    tokens = [text_metrics.tokenize(c) for c in candidates]
    assert text_metrics.mbr_select(tokens) == 1
    order = [3, 0, 2, 1]
    assert text_metrics.mbr_select([tokens[i] for i in order]) == order.index(1)
    assert text_metrics.mbr_select([tokens[0], tokens[0]]) == 0
    assert text_metrics.mbr_select([tokens[2]]) == 0


def test_cut_target_stops_at_the_first_sep_or_pad():
    assert cut_target([5, 6, 102, 7, 102], {102, 0}) == [5, 6]
    assert cut_target([5, 0, 6], {102, 0}) == [5]
    assert cut_target([102, 5], {102, 0}) == []
    assert cut_target([5, 6], {102, 0}) == [5, 6]
