"""The spindle's reveal mass and the fused KL against plain autograd over the full vocabulary."""

import math

import pytest
import torch

from diffusion import AbsorbingDiffusion, NoiseSchedule, absorbing_kl, blocks, masked_kl

V = 40
MASK = V - 1


def _diffusion(
    T: int = 100, lam: float = 0.3, nonmonotone: bool = False, protocol: str = "exact"
) -> AbsorbingDiffusion:
    g = torch.Generator().manual_seed(0)
    h = torch.rand(V, generator=g)
    h[0] = 0.0  # [PAD]
    h[1] = 1.0  # the most frequent token
    schedule = NoiseSchedule("mutual", T, lam, allow_nonmonotone=nonmonotone)
    return AbsorbingDiffusion(schedule, MASK, h, protocol)


def _brute_rate(diffusion, u_t, u_s, mean):
    """r(v) = (ᾱ_t(w) − ᾱ_s(w)) / (1 − ᾱ_s(w)) at w = h(v) − mean, (N, V), from ``alpha_bar``
    (with the protocol's keep cap)."""
    w = diffusion.h.double().unsqueeze(0) - mean.unsqueeze(-1)
    a_t = diffusion.alpha_bar(u_t, w)
    a_s = diffusion.alpha_bar(u_s, w)
    rate = (a_t - a_s) / (1.0 - a_s)
    return rate.clamp(0.0, 1.0) if diffusion.schedule.allow_nonmonotone else rate


@pytest.mark.parametrize("protocol", ["exact", "official"])
@pytest.mark.parametrize("nonmonotone", [False, True])
def test_rate_table_matches_alpha_bar_and_its_slope(nonmonotone, protocol):
    """One row per sequence, against ``alpha_bar`` token by token, where no clip binds and where
    one does (t = 0, u = 1, and with the official protocol's cap s near 0 where ᾱ hits 0.999);
    the slope ∂r/∂mean against reverse-mode autograd of that brute-force rate."""
    lam = 0.31 if nonmonotone else 0.3
    diffusion = _diffusion(lam=lam, nonmonotone=nonmonotone, protocol=protocol)
    u_t = torch.tensor([0.0, 0.0, 0.001, 0.2, 0.5, 0.7, 0.93, 0.98], dtype=torch.float64)
    u_s = u_t + torch.tensor([0.01, 0.3, 0.002, 0.05, 0.01, 0.2, 0.05, 0.02], dtype=torch.float64)
    mean = torch.tensor([0.1, 0.5, 0.05, 0.4, 0.6, 0.3, 0.9, 0.5], dtype=torch.float64)
    rates, slopes = diffusion.rate_table(u_t, u_s, mean, slope=True)
    assert torch.equal(diffusion.rate_table(u_t, u_s, mean)[0], rates)
    leaf = mean.clone().requires_grad_()
    brute = _brute_rate(diffusion, u_t, u_s, leaf)
    assert torch.allclose(rates, brute, rtol=1e-11, atol=1e-15)  # 1 − ᾱ_s ≈ 3e-3 at row 2
    assert (brute[1:] > 0).any(-1).all()
    weights = torch.rand(
        brute.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    (slope,) = torch.autograd.grad((brute * weights).sum(), leaf)
    # row 2 has 1 − ᾱ_s ≈ 3e-3: rounding of order ε / (1 − ᾱ_s)² in the slope
    assert torch.allclose((slopes * weights).sum(-1), slope, rtol=1e-12, atol=1e-11)
    assert slopes.ne(0).any()


def _reference_kl(diffusion, u_t, u_s, x0, xs, target, masked, log_probs):
    """The KL written with autograd over full (N, V) tensors: the obviously-correct version."""
    rows = masked.nonzero(as_tuple=True)[0]
    probs = log_probs.exp()
    h = diffusion.h.double()
    visible = (h[xs] * (target & ~masked)).sum(-1)
    mean = (visible.index_add(0, rows, probs @ h) / target.sum(-1))[rows]
    rate = _brute_rate(diffusion, u_t[rows], u_s[rows], mean)
    a = diffusion.posterior_rate(u_t, u_s, diffusion.centred(x0, target)).expand_as(x0)[masked]
    log_p_x0 = log_probs.gather(-1, x0[masked].unsqueeze(-1)).squeeze(-1)
    r_x0 = rate.gather(-1, x0[masked].unsqueeze(-1)).squeeze(-1)
    return absorbing_kl(a, log_p_x0, r_x0, (probs * rate).sum(-1)), log_p_x0


def _weighted(weights, outputs) -> torch.Tensor:
    return sum((w * o).sum() for w, o in zip(weights, outputs, strict=True))


def _batch(seed: int):
    """Three sequences with different target lengths and padding; times per sequence include
    t = 0 and small steps where the reference's 0.999 cap would bind."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randint(1, MASK, (3, 9), generator=g)
    target = torch.arange(9) < torch.tensor([[9], [6], [4]])
    x0 = x0.masked_fill(~target, 0)
    masked = (torch.rand(3, 9, generator=g) < 0.6) & target
    masked[:, 0] = True
    xs = x0.masked_fill(masked, MASK)
    logits = torch.randn(int(masked.sum()), V, generator=g, dtype=torch.float64)
    logits[:, MASK] = -math.inf
    return x0, target, masked, xs, logits


@pytest.mark.parametrize("block_elements", [V, 3 * V, 2**21])
@pytest.mark.parametrize("times", [(0.0, 0.01), (0.001, 0.002), (0.45, 0.5), (0.9, 1.0)])
def test_spindle_kl_matches_autograd_over_the_full_vocabulary(
    monkeypatch, block_elements, times, device
):
    """Values and gradients of (KL, log p(x0)) in row blocks of 1, 3 and all rows (blocks cut
    through sequences), against full-vocabulary autograd (on the CPU), including the coupling
    of a sequence's positions through the estimated mean."""
    monkeypatch.setitem(blocks.BLOCK_ELEMENTS, device.type, block_elements)
    diffusion = _diffusion()
    x0, target, masked, xs, logits = _batch(seed=int(1000 * times[1]))
    u_t = torch.tensor([times[0], 0.0, times[0]], dtype=torch.float64)
    u_s = torch.tensor([times[1], 0.02, times[1]], dtype=torch.float64)
    leaf = logits.to(device).requires_grad_()
    on = [x.to(device) for x in (u_t, u_s, x0, xs, target, masked)]
    ours = masked_kl(diffusion, *on, leaf.log_softmax(-1))
    ref_leaf = logits.clone().requires_grad_()
    ref = _reference_kl(diffusion, u_t, u_s, x0, xs, target, masked, ref_leaf.log_softmax(-1))
    g = torch.Generator().manual_seed(7)
    weights = [torch.rand(len(ref[0]), generator=g, dtype=torch.float64) for _ in range(2)]
    for a, b in zip(ours, ref, strict=True):
        assert a.device == leaf.device
        assert torch.allclose(a.cpu(), b, rtol=1e-12, atol=1e-14)
    (grad,) = torch.autograd.grad(_weighted([w.to(device) for w in weights], ours), leaf)
    (ref_grad,) = torch.autograd.grad(_weighted(weights, ref), ref_leaf)
    assert torch.allclose(grad.cpu(), ref_grad, rtol=1e-10, atol=1e-13)
    assert grad[:, MASK].eq(0).all()


def test_spindle_kl_passes_gradcheck(monkeypatch):
    """Finite differences in float64 through log_softmax, with blocks of two rows."""
    monkeypatch.setitem(blocks.BLOCK_ELEMENTS, "cpu", 2 * V)
    diffusion = _diffusion()
    x0, target, masked, xs, logits = _batch(seed=3)
    logits[:, MASK] = 0.0
    u_t = torch.tensor([0.3, 0.0, 0.6], dtype=torch.float64)
    u_s = torch.tensor([0.35, 0.05, 0.62], dtype=torch.float64)

    def both(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = z.index_fill(-1, torch.tensor([MASK]), -math.inf).log_softmax(-1)
        return masked_kl(diffusion, u_t, u_s, x0, xs, target, masked, log_probs)

    assert torch.autograd.gradcheck(both, (logits.requires_grad_(),), eps=1e-6, atol=1e-7)


def test_spindle_kl_without_gradient_equals_with():
    """The no-grad forward (exp computed once and reused) gives the same numbers."""
    diffusion = _diffusion()
    x0, target, masked, xs, logits = _batch(seed=5)
    u_t = torch.tensor([0.3, 0.0, 0.6], dtype=torch.float64)
    u_s = u_t + 0.04
    args = (diffusion, u_t, u_s, x0, xs, target, masked)
    with_grad = masked_kl(*args, logits.log_softmax(-1).requires_grad_())
    with torch.no_grad():
        without = masked_kl(*args, logits.log_softmax(-1))
    for a, b in zip(with_grad, without, strict=True):
        assert torch.allclose(a.detach(), b, rtol=1e-14, atol=0)


def test_spindle_kl_in_float32_is_close_to_float64(device):
    """The network's float32 log-probabilities: outputs and gradient in float32, within float32
    rounding of the float64 computation."""
    diffusion = _diffusion()
    x0, target, masked, xs, logits = (x.to(device) for x in _batch(seed=9))
    u_t = torch.tensor([0.3, 0.0, 0.6], dtype=torch.float64, device=device)
    u_s = u_t + 0.04
    args = (diffusion, u_t, u_s, x0, xs, target, masked)
    results = []
    for dtype in (torch.float32, torch.float64):
        leaf = logits.to(dtype).requires_grad_()
        kl, log_p_x0 = masked_kl(*args, leaf.log_softmax(-1))
        (grad,) = torch.autograd.grad((kl - 0.1 * log_p_x0).sum(), leaf)
        assert kl.dtype == log_p_x0.dtype == grad.dtype == dtype
        results.append((kl, log_p_x0, grad))
    for low, high in zip(*results, strict=True):
        assert torch.allclose(low.double(), high, rtol=1e-5, atol=1e-6)


def test_spindle_kl_ignores_autocast(device):
    """Under bf16 autocast (the GPU recipe) the vocabulary sums stay float32."""
    diffusion = _diffusion()
    x0, target, masked, xs, logits = (x.to(device) for x in _batch(seed=11))
    u_t = torch.tensor([0.3, 0.0, 0.6], dtype=torch.float64, device=device)
    args = (diffusion, u_t, u_t + 0.04, x0, xs, target, masked)
    log_probs = logits.float().log_softmax(-1)
    plain = masked_kl(*args, log_probs)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        autocast = masked_kl(*args, log_probs)
    for a, b in zip(plain, autocast, strict=True):
        assert torch.equal(a, b)
