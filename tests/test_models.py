"""The denoiser wrapper, time designs and the checkpoint directory."""

import pytest
import torch
from transformers import AutoModelForMaskedLM

from common.errors import UsageError
from common.files import atomic_directory
from models import (
    DiffusionConfig,
    build_model,
    load_checkpoint,
    resolve_checkpoint_dir,
    save_checkpoint,
)

TEXTS = ["the old farmer sold a red horse to the baker .", "a dog slept ."]


def _batch(tokenizer):
    enc = tokenizer(TEXTS, add_special_tokens=False, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"].bool()


def _model(tiny_bert, tokenizer, timestep="none", seed=0):
    torch.manual_seed(seed)
    config = DiffusionConfig(timestep=timestep, num_steps=100, max_length=32)
    return build_model(str(tiny_bert), tokenizer, config, from_scratch=True).eval()


def test_network_reads_cls_x_sep_per_row(tiny_bert, tokenizer):
    model = _model(tiny_bert, tokenizer)
    xt, real = _batch(tokenizer)
    ours = model.hidden_states(xt, torch.zeros(2))
    for row, text in enumerate(TEXTS):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        assert ids[0, 0] == tokenizer.cls_token_id and ids[0, -1] == tokenizer.sep_token_id
        alone = model.mlm.base_model(input_ids=ids).last_hidden_state[0, 1:-1]
        n = int(real[row].sum())
        assert torch.allclose(ours[row, :n], alone, atol=1e-5)


def test_log_probs_are_the_mlm_head_at_masked_positions_without_mask_token(
    tiny_bert, tokenizer, device
):
    model = _model(tiny_bert, tokenizer)
    xt, real = _batch(tokenizer)
    masked = torch.zeros_like(real)
    masked[0, [1, 4]] = True
    masked[1, 2] = True
    xt = xt.masked_fill(masked, tokenizer.mask_token_id)
    on = model.to(device)(xt.to(device), torch.full((2,), 0.5, device=device), masked.to(device))
    assert on.device.type == device.type
    log_probs, model = on.cpu(), model.cpu()
    assert log_probs.shape == (3, len(tokenizer))
    assert torch.isneginf(log_probs[:, tokenizer.mask_token_id]).all()
    expected = []
    for row in range(2):
        n = int(real[row].sum())
        ids = [tokenizer.cls_token_id, *xt[row, :n].tolist(), tokenizer.sep_token_id]
        logits = model.mlm(input_ids=torch.tensor([ids])).logits[0, 1:-1]
        expected.append(logits[masked[row, :n]])
    expected = torch.cat(expected)
    expected[:, tokenizer.mask_token_id] = -float("inf")
    assert torch.allclose(log_probs, expected.log_softmax(-1), atol=1e-4)


def test_target_log_probs_in_row_blocks_equal_the_full_head(tiny_bert, tokenizer, monkeypatch):
    """``target=`` gives log p_θ(target) from row blocks recomputed in backward: the same values
    and parameter gradients as gathering from the (N, V) output, and the full output's [M]
    column gets no gradient."""
    from diffusion import blocks
    from diffusion.types import target_log_probs

    monkeypatch.setitem(blocks.BLOCK_ELEMENTS, "cpu", 2 * len(tokenizer))
    model = _model(tiny_bert, tokenizer, timestep="layerwise").train()
    xt, real = _batch(tokenizer)
    masked = real & (torch.arange(xt.shape[1]) % 2 == 0)
    target = xt[masked]
    xt = xt.masked_fill(masked, tokenizer.mask_token_id)
    u = torch.tensor([0.3, 0.8])
    weights = torch.rand(len(target), generator=torch.Generator().manual_seed(0))

    def gradients(values: torch.Tensor) -> dict[str, torch.Tensor]:
        (weights * values).sum().backward()
        out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return out

    torch.manual_seed(1)  # the same dropout in both
    blocked = target_log_probs(model, xt, u, masked, target)
    blocked_grads = gradients(blocked)
    torch.manual_seed(1)
    log_probs = model(xt, u, masked)
    log_probs.retain_grad()
    full = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    full_grads = gradients(full)
    assert torch.allclose(blocked, full, atol=1e-5)
    assert log_probs.grad[:, tokenizer.mask_token_id].eq(0).all()
    assert blocked_grads.keys() == full_grads.keys() and len(full_grads) > 10
    for name, grad in full_grads.items():
        assert torch.allclose(blocked_grads[name], grad, atol=1e-5), name


@pytest.mark.parametrize("timestep", ["token", "layerwise"])
def test_time_designs_use_the_time(tiny_bert, tokenizer, timestep, device):
    model = _model(tiny_bert, tokenizer, timestep).to(device)
    xt, real = (x.to(device) for x in _batch(tokenizer))
    if timestep == "layerwise":
        none = _model(tiny_bert, tokenizer, "none").to(device)
        u = torch.tensor([0.1, 0.9], device=device)
        same = model(xt, u, real)
        assert torch.allclose(same, none(xt, u, real), atol=1e-5), (
            "the zero-initialised layer-wise path must leave the network unchanged"
        )
        for proj in model.time.proj:
            torch.nn.init.normal_(proj.weight, std=0.5)
    a = model(xt, torch.tensor([0.1, 0.1], device=device), real)
    b = model(xt, torch.tensor([0.9, 0.9], device=device), real)
    assert not torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("timestep", ["none", "token", "layerwise"])
def test_checkpoint_round_trip(tiny_bert, tokenizer, tmp_path, timestep):
    model = _model(tiny_bert, tokenizer, timestep)
    if model.time is not None:
        for p in model.time.parameters():
            torch.nn.init.normal_(p, std=0.1)
    config = DiffusionConfig(timestep=timestep, num_steps=100, word_freq_lambda=0.2, max_length=32)
    counts = torch.randint(0, 1000, (len(tokenizer),))
    save_checkpoint(tmp_path / "ckpt", model, tokenizer, config, counts)
    loaded = load_checkpoint(tmp_path / "ckpt")
    xt, real = _batch(tokenizer)
    u = torch.tensor([0.3, 0.7])
    assert torch.equal(loaded.model(xt, u, real), model(xt, u, real))
    assert loaded.config == config
    assert torch.equal(loaded.counts, counts)
    assert loaded.diffusion().schedule.word_freq_lambda == 0.2
    plain = AutoModelForMaskedLM.from_pretrained(tmp_path / "ckpt")
    assert type(plain).__name__ == "BertForMaskedLM"


def test_bad_checkpoint_folders_are_named(tiny_bert, tokenizer, tmp_path):
    with pytest.raises(UsageError, match="no such directory"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(UsageError, match=r"incomplete: model\.safetensors"):
        load_checkpoint(tmp_path / "half")
    model = _model(tiny_bert, tokenizer)
    config = DiffusionConfig(num_steps=100, max_length=32)
    save_checkpoint(tmp_path / "ok", model, tokenizer, config, torch.ones(7, dtype=torch.long))
    with pytest.raises(UsageError, match="different models"):
        load_checkpoint(tmp_path / "ok")


def test_atomic_directory_keeps_the_old_copy_on_failure(tmp_path):
    target = tmp_path / "last"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("crash mid-write")
    assert (target / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["last"]
    target.rename(tmp_path / ".last.old")  # a crash between the two renames
    with pytest.raises(UsageError, match="incomplete"):
        resolve_checkpoint_dir(target)


def test_max_length_beyond_positions_is_rejected(tiny_bert, tokenizer):
    config = DiffusionConfig(num_steps=100, max_length=63)
    with pytest.raises(UsageError, match="--max_length 63 does not fit"):
        build_model(str(tiny_bert), tokenizer, config, from_scratch=True)


def test_a_batch_with_nothing_masked_still_backpropagates(tiny_bert, tokenizer, device):
    """At small t a d3pm batch can have no masked position; the loss (0) must still reach
    every weight it would touch (a backward without a graph fails, and DDP needs the same
    parameters on every rank)."""
    from diffusion import NoiseSchedule, d3pm_loss
    from diffusion.losses import Noise

    model = _model(tiny_bert, tokenizer).train().to(device)
    x0, real = (x.to(device) for x in _batch(tokenizer))
    nothing = torch.zeros_like(real)
    out = model(x0, torch.zeros(2, device=device), nothing, target=x0[nothing])
    assert out.shape == (0,) and out.requires_grad
    diffusion = DiffusionConfig(num_steps=2048, max_length=32).diffusion(
        None, tokenizer.mask_token_id, tokenizer.pad_token_id)  # fmt: skip
    assert isinstance(diffusion.schedule, NoiseSchedule)
    zeros = torch.zeros(x0.shape, dtype=torch.float64, device=device)
    keep_all = Noise(zeros[:, 0], zeros)  # t = 0 and draws below every keep probability
    loss = d3pm_loss(diffusion, model, x0, real, noise=keep_all)
    assert loss.num_masked == 0 and loss.loss.item() == 0.0
    loss.loss.backward()
    head_bias = model.mlm.get_output_embeddings().bias
    assert head_bias.grad is not None and torch.count_nonzero(head_bias.grad) == 0
