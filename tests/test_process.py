"""The absorbing process, its posterior, the closed-form KL and the losses against dense D3PM."""

import math

import pytest
import torch

from diffusion import AbsorbingDiffusion, NoiseSchedule, d3pm_loss, masked_kl, mdlm_loss
from tests import dense_reference as ref

T = 16


@pytest.mark.parametrize("name", ["mutual", "linear", "cosine"])
def test_base_alpha_bar_equals_dense_product_of_markov_steps(name):
    schedule = NoiseSchedule(name, T)
    for t in range(T + 1):
        dense = ref.base_marginal(name, T, t)[0, 0].item()
        ours = schedule.base_alpha_bar(torch.tensor(t / T, dtype=torch.float64)).item()
        assert ours == pytest.approx(dense, abs=1e-9), (name, t)


def test_mutual_is_linear_in_t():
    schedule = NoiseSchedule("mutual", 2048)
    t = torch.arange(2049, dtype=torch.float64)
    assert torch.allclose(schedule.base_alpha_bar(t / 2048), 1 - t / 2048, atol=1e-12)


def test_spindle_matches_the_formula_token_by_token():
    lam = 0.3
    schedule = NoiseSchedule("mutual", T, lam)
    w = torch.tensor([[0.7, -0.4, 0.0, -1.0], [1.0, 0.2, -0.9, 0.5]], dtype=torch.float64)
    for t in range(T + 1):
        u = torch.full((2,), t / T, dtype=torch.float64)
        ours = schedule.alpha_bar(u, w)
        for b in range(2):
            for i in range(4):
                hand = ref.spindle_keep(1 - t / T, lam, t, T, w[b, i].item())
                assert ours[b, i].item() == pytest.approx(hand, abs=1e-12), (t, b, i)


def test_cosine_derivative_matches_finite_differences():
    schedule = NoiseSchedule("cosine", T, 0.2, allow_nonmonotone=True)
    w = torch.tensor([[0.5, -0.5, 0.0]], dtype=torch.float64)
    for u0 in [0.05, 0.3, 0.6, 0.9]:
        u = torch.tensor([u0], dtype=torch.float64)
        h = 1e-6
        fd = (schedule.alpha_bar(u + h, w) - schedule.alpha_bar(u - h, w)) / (2 * h)
        assert torch.allclose(schedule.alpha_bar_derivative(u, w), fd, atol=1e-6)


def test_q_sample_keeps_each_token_with_its_marginal(device):
    counts = torch.tensor([1000, 10, 100, 1, 50, 5, 0])
    from diffusion import token_information

    h = token_information(counts, pad_id=None)
    diffusion = AbsorbingDiffusion(NoiseSchedule("mutual", T, 0.3), ref.MASK, h)
    n = 20000
    x0 = torch.tensor([[0, 1, 2, 3, 4, 5]], device=device).expand(n, 6)
    target = torch.ones_like(x0, dtype=torch.bool)
    u = torch.full((n,), 0.4, dtype=torch.float64, device=device)
    xt, masked = diffusion.q_sample(x0, target, u, torch.Generator(device).manual_seed(0))
    assert xt.device == masked.device == x0.device
    keep = diffusion.alpha_bar(u[:1], diffusion.centred(x0[:1], target[:1]))[0]
    freq = 1 - masked.double().mean(0)
    sigma = (keep * (1 - keep) / n).sqrt()
    assert ((freq - keep).abs() < 5 * sigma).all()
    assert torch.equal(xt[masked], torch.full_like(xt[masked], ref.MASK))
    assert torch.equal(xt[~masked], x0[~masked])


def _setup(lam: float, protocol: str = "exact"):
    counts = torch.tensor([900, 3, 120, 40, 7, 60, 0])
    from diffusion import token_information

    h = token_information(counts, pad_id=None)
    h[ref.MASK] = 0
    return AbsorbingDiffusion(NoiseSchedule("mutual", T, lam), ref.MASK, h, protocol), h


@pytest.mark.parametrize("protocol", ["exact", "official"])
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_posterior_matches_dense_bayes(lam, protocol, device):
    diffusion, _ = _setup(lam, protocol)
    x0 = torch.tensor([[0, 1, 2, 3, 4]], device=device)
    target = torch.ones_like(x0, dtype=torch.bool)
    w = diffusion.centred(x0, target)
    x0 = x0.cpu()
    for t, s in [(0, 1), (3, 7), (10, 11), (14, 16)]:
        u_t = torch.tensor([t / T], dtype=torch.float64, device=device)
        u_s = torch.tensor([s / T], dtype=torch.float64, device=device)
        ours = diffusion.posterior_rate(u_t, u_s, w).expand_as(x0)[0].cpu()
        for i in range(5):
            wi = 0.0 if w is None else w[0, i].item()
            keep_t = ref.spindle_keep(1 - t / T, lam, t, T, wi, ref.CAP[protocol])
            keep_s = ref.spindle_keep(1 - s / T, lam, s, T, wi, ref.CAP[protocol])
            if protocol == "official":
                dense = ref.posterior(
                    x0[0, i].item(), ref.MASK, keep_t, keep_s, 1 - t / T, 1 - s / T
                )
            else:
                dense = ref.posterior(x0[0, i].item(), ref.MASK, keep_t, keep_s)
            assert ours[i].item() == pytest.approx(dense[x0[0, i]].item(), abs=1e-9)
            assert dense[ref.MASK].item() == pytest.approx(1 - ours[i].item(), abs=1e-9)


def _random_log_probs(n: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, ref.V, generator=g, dtype=torch.float64)
    logits[:, ref.MASK] = -math.inf
    return logits.log_softmax(-1).to(device)


def _dense_model_posterior(
    diffusion, h, t, s, xs, target, masked_row, probs, x0_row, i, lam, protocol, steps=T, cap=None
):
    """p_θ(x_t^i | x_s) written out with dense posteriors, one candidate x0 at a time, in a
    process of ``steps`` steps with keep cap ``cap`` (default: the protocol's)."""
    cap = ref.CAP[protocol] if cap is None else cap
    out = torch.zeros(ref.V, dtype=torch.float64)
    visible = [h[xs[j]].item() for j in range(len(xs)) if target[j] and not masked_row[j]]
    expected = [(probs[k] * h.double()).sum().item() for k in range(probs.shape[0])]
    mean = (sum(visible) + sum(expected)) / int(target.sum())
    true_h = [h[x0_row[j]].item() for j in range(len(xs)) if target[j]]
    true_mean = sum(true_h) / len(true_h)
    k = int(masked_row[:i].sum())
    for v in range(ref.V - 1):
        if protocol == "official":
            wv = h[x0_row[i]].item() - true_mean
            post = ref.posterior(
                v,
                ref.MASK,
                ref.spindle_keep(1 - t / steps, lam, t, steps, wv, cap),
                ref.spindle_keep(1 - s / steps, lam, s, steps, wv, cap),
                1 - t / steps,
                1 - s / steps,
            )
        else:
            wv = h[v].item() - mean
            post = ref.posterior(
                v,
                ref.MASK,
                ref.spindle_keep(1 - t / steps, lam, t, steps, wv, cap),
                ref.spindle_keep(1 - s / steps, lam, s, steps, wv, cap),
            )
        out += probs[k, v] * post
    return out


@pytest.mark.parametrize("protocol", ["exact", "official"])
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_masked_kl_matches_dense_kl(lam, protocol, device):
    diffusion, h = _setup(lam, protocol)
    x0 = torch.tensor([[0, 1, 2, 3, 4, 5]])
    target = torch.tensor([[True, True, True, True, True, False]])
    masked = torch.tensor([[True, False, True, True, False, False]])
    xs = x0.masked_fill(masked, ref.MASK)
    log_probs = _random_log_probs(int(masked.sum()), 1)
    on = [x.to(device) for x in (x0, xs, target, masked, log_probs)]
    for t, s in [(0, 1), (4, 5), (9, 13)]:
        u_t = torch.tensor([t / T], dtype=torch.float64, device=device)
        u_s = torch.tensor([s / T], dtype=torch.float64, device=device)
        ours, _ = masked_kl(diffusion, u_t, u_s, on[0], on[1], on[2], on[3], on[4])
        assert ours.device == on[0].device
        ours = ours.cpu()
        w = diffusion.centred(x0, target)
        for k, i in enumerate(masked[0].nonzero().flatten().tolist()):
            wi = 0.0 if w is None else w[0, i].item()
            keep_t = ref.spindle_keep(1 - t / T, lam, t, T, wi, ref.CAP[protocol])
            keep_s = ref.spindle_keep(1 - s / T, lam, s, T, wi, ref.CAP[protocol])
            if protocol == "official":
                q = ref.posterior(x0[0, i].item(), ref.MASK, keep_t, keep_s, 1 - t / T, 1 - s / T)
            else:
                q = ref.posterior(x0[0, i].item(), ref.MASK, keep_t, keep_s)
            p = _dense_model_posterior(
                diffusion,
                h,
                t,
                s,
                xs[0],
                target[0],
                masked[0],
                log_probs.exp(),
                x0[0],
                i,
                lam,
                protocol,
            )
            assert ours[k].item() == pytest.approx(ref.kl(q, p), abs=1e-6), (t, s, i)


class RecordingDenoiser:
    """A fixed stand-in network: log-probs depend on the position only; records its inputs."""

    def __init__(self, length: int, seed: int = 3, device: torch.device | str = "cpu"):
        self.table = _random_log_probs(length, seed, device)
        self.calls = []

    def __call__(self, xt, u, masked):
        self.calls.append((xt.cpu(), u.cpu(), masked.cpu()))
        positions = masked.nonzero(as_tuple=True)[1]
        return self.table[positions]


@pytest.mark.parametrize("per_sequence_t", [False, True])
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_d3pm_loss_matches_dense_reference(lam, per_sequence_t, device):
    diffusion, h = _setup(lam)
    x0 = torch.tensor([[0, 1, 2, 3, 4, 5], [5, 5, 0, 2, 1, 3]])
    target = torch.tensor([[True] * 6, [True, True, True, True, False, False]])
    hybrid = 0.25
    for seed in range(6):
        net = RecordingDenoiser(6, device=device)
        out = d3pm_loss(
            diffusion,
            net,
            x0.to(device),
            target.to(device),
            hybrid,
            per_sequence_t,
            torch.Generator(device).manual_seed(seed),
        )
        assert out.loss.device == x0.to(device).device
        net.table = net.table.cpu()
        xs, u_s, masked = net.calls[0]
        dense, dense_kl = 0.0, 0.0
        for b in range(2):
            s = round(u_s[b].item() * T)
            t = s - 1
            w = diffusion.centred(x0, target)
            lp = net.table[masked[b].nonzero().flatten()]
            for k, i in enumerate(masked[b].nonzero().flatten().tolist()):
                wi = 0.0 if w is None else w[b, i].item()
                q = ref.posterior(
                    x0[b, i].item(),
                    ref.MASK,
                    ref.spindle_keep(1 - t / T, lam, t, T, wi),
                    ref.spindle_keep(1 - s / T, lam, s, T, wi),
                )
                p = _dense_model_posterior(
                    diffusion,
                    h,
                    t,
                    s,
                    xs[b],
                    target[b],
                    masked[b],
                    lp.exp(),
                    x0[b],
                    i,
                    lam,
                    "exact",
                )
                dense += ref.kl(q, p) - hybrid * lp[k, x0[b, i]].item()
                dense_kl += ref.kl(q, p)
        assert out.loss.item() == pytest.approx(dense / 2, abs=1e-6)
        assert out.nats.item() == pytest.approx(T * dense_kl, abs=1e-5)  # no hybrid term
        assert out.num_masked.item() == int(masked.sum())
        assert not (masked & ~target).any()
        if not per_sequence_t:
            assert u_s[0] == u_s[1]


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_the_training_figure_averages_to_the_bound(lam):
    """d3pm's ``nats`` (T × the sampled step's KL, summed over the batch) averages over draws
    to the exact T-step NELBO of the enumerated model; its hybrid term stays out of it."""
    from tests.enumeration import L, TinyNet, exact_nelbo, make_diffusion

    diffusion, net = make_diffusion(lam, 8), TinyNet()
    x0 = torch.tensor([[0, 2]])
    rows, chunks = 200, 40
    target = torch.ones(rows, L, dtype=torch.bool)
    means = torch.tensor([
        d3pm_loss(diffusion, net, x0.expand(rows, L), target, 0.5, True,
                  torch.Generator().manual_seed(chunk)).nats.item() / rows
        for chunk in range(chunks)
    ])  # fmt: skip
    exact = exact_nelbo(diffusion, net, x0, 1)
    se = means.std().item() / math.sqrt(chunks)
    assert abs(means.mean().item() - exact) < 4 * se


def test_mdlm_loss_hand_case(device):
    lam = 0.2
    diffusion, h = _setup(lam)
    x0 = torch.tensor([[0, 1, 2, 3]], device=device)
    target = torch.tensor([[True, True, True, False]], device=device)
    net = RecordingDenoiser(4, device=device)
    out = mdlm_loss(diffusion, net, x0, target, torch.Generator(device).manual_seed(5))
    x0, net.table = x0.cpu(), net.table.cpu()
    _, u, masked = net.calls[0]
    u = u.item()
    hx = [h[v].item() for v in (0, 1, 2)]
    mean = sum(hx) / 3
    hand = 0.0
    for i in masked[0].nonzero().flatten().tolist():
        w = hx[i] - mean
        a = 1 - u + lam * math.sin(math.pi * u) * w
        da = -1 + lam * math.pi * math.cos(math.pi * u) * w
        hand += -da / (1 - a) * -net.table[i, x0[0, i]].item()
    assert out.loss.item() == pytest.approx(hand, rel=1e-6)  # h is float32


def test_mdlm_weight_is_one_over_u_without_spindle():
    schedule = NoiseSchedule("mutual", T)
    u = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(schedule.loss_weight(u).squeeze(-1), 1 / u)


def test_exact_kl_is_finite_where_the_capped_model_rate_vanishes():
    """T = 2048, t = 1, s = 2: with the 0.999 cap the frequent candidate x0 (as the model sees
    it: w = 0.17) is capped at t and s, so its capped rate is 0, while the true token (w =
    −0.05) has a > 0: the KL against a capped model is +∞. The exact protocol has no cap: its
    KL is finite and equals the dense one."""
    steps, lam, t, s = 2048, 0.3, 1, 2
    h = torch.tensor([0.5, 0.6, 0.05, 0.05, 0.05, 0.05, 0.0])
    diffusion = AbsorbingDiffusion(NoiseSchedule("mutual", steps, lam), ref.MASK, h)
    x0, target = torch.tensor([[0, 1]]), torch.ones(1, 2, dtype=torch.bool)
    masked = torch.tensor([[True, False]])
    xs = x0.masked_fill(masked, ref.MASK)
    probs = torch.tensor([[0.01, 0.0, 0.3, 0.3, 0.2, 0.19, 0.0]], dtype=torch.float64)
    u_t = torch.tensor([t / steps], dtype=torch.float64)
    u_s = torch.tensor([s / steps], dtype=torch.float64)
    w_true = diffusion.centred(x0, target)[0, 0].item()
    w_model = h[0].item() - ((probs[0] * h.double()).sum().item() + h[1].item()) / 2
    assert w_true == pytest.approx(-0.05) and w_model > 0.15

    def capped(u, w):
        return diffusion.schedule.alpha_bar(u, torch.tensor([[w]]), cap=0.999).item()

    def rate(w):
        return (capped(u_t, w) - capped(u_s, w)) / (1 - capped(u_s, w))

    assert rate(w_model) == 0 < rate(w_true)
    args = (diffusion, h, t, s, xs[0], target[0], masked[0], probs, x0[0], 0, lam, "exact", steps)
    q = ref.posterior(
        0,
        ref.MASK,
        ref.spindle_keep(1 - t / steps, lam, t, steps, w_true, 0.999),
        ref.spindle_keep(1 - s / steps, lam, s, steps, w_true, 0.999),
    )
    assert ref.kl(q, _dense_model_posterior(*args, cap=0.999)) == math.inf
    ours, _ = masked_kl(diffusion, u_t, u_s, x0, xs, target, masked, probs.log())
    q = ref.posterior(
        0,
        ref.MASK,
        ref.spindle_keep(1 - t / steps, lam, t, steps, w_true),
        ref.spindle_keep(1 - s / steps, lam, s, steps, w_true),
    )
    dense = ref.kl(q, _dense_model_posterior(*args))
    assert math.isfinite(ours.item()) and 0 < dense < 5
    assert ours.item() == pytest.approx(dense, rel=1e-9, abs=1e-12)
