"""The continuous-time bound's estimators, one class each, picked by name (``ESTIMATORS``,
``make_estimator``). All are unbiased; they differ in how their K draws of a time and a mask
are made and scored, and so in their variance.

Draw k has a time u = eps + (1 − eps) · v, v ∈ [0, 1], and a mask of x0 at u; one network
call at the masked sequence scores it. The bound is ∫_eps^1 of the path-KL rate
(``diffusion.kl.continuous_integrand``) plus the exact reconstruction step from u = eps to 0.
``ContinuousEstimator.estimate`` runs the draws; each subclass overrides the one step it
changes (``uniform``, ``time``, ``draw``, ``score``, ``start`` or ``finish``). A new estimator
is one subclass added to ``ESTIMATORS``, plus its tests (docs/development.md shows one).
"""

from __future__ import annotations

import torch

from diffusion.bound_batch import BoundBatch, ContinuousDraws
from diffusion.draws import TimeProposal, stratified
from diffusion.errors import ParameterError
from diffusion.kl import continuous_integrand
from diffusion.rao_blackwell import (
    context_free,
    leave_one_out_control,
    leave_one_out_values,
    time_given_mask,
)


class ContinuousEstimator:
    """``plain``: K stratified times per sequence, u_k = eps + (1 − eps) · ((offset + k / K)
    mod 1), and masks drawn iid from q(x_u | x0). At small u most draws mask nothing and score
    0, and a few mask one token and score about 1/u times its NLL: that 0-or-large split is
    most of the variance."""

    name = "plain"
    summary = "iid masks"
    conditioned = False  # masks conditioned on masking at least one target token
    time_agnostic = False  # needs a network blind to the time, rates free of the candidate
    carries_reconstruction = False  # the draws carry the step at eps: no call there
    uses_proposal = False  # times from a ``TimeProposal``

    def __init__(self, proposal: TimeProposal | None = None) -> None:
        self.proposal = proposal if self.uses_proposal and proposal else TimeProposal.uniform()

    def estimate(self, batch: BoundBatch) -> ContinuousDraws:
        """Run the K draws of ``batch`` and return the estimate's parts (all float64)."""
        batch.diffusion.schedule.require_continuous()
        if self.time_agnostic and batch.diffusion.candidate_rates:
            raise ParameterError(
                "estimator",
                f"estimator {self.name!r} needs reveal rates that do not depend on the "
                "candidate token: a schedule without the spindle, or the official protocol",
            )
        self.start(batch)
        batch.offsets = batch.noise.offset()
        for k in range(batch.mc_samples):
            xt, masked, u, v, factor = self.draw(batch, k)
            log_probs = batch.denoiser(xt, u, masked)
            batch.times[:, k] = v
            self.score(batch, k, xt, masked, u, factor, log_probs)
        return self.finish(batch)

    def start(self, batch: BoundBatch) -> None:
        """Anything computed before the draws (a control variate's call)."""

    def uniform(self, batch: BoundBatch, k: int) -> torch.Tensor:
        """The uniform (B,) that draw k's time is made from."""
        return stratified(batch.offsets, k, batch.mc_samples)

    def draw(self, batch: BoundBatch, k: int):
        """Draw k: x_u (B, L), masked (B, L), u (B,), v (B,) and its score's factor (B,)."""
        v, weight = self.proposal.sample(self.uniform(batch, k))
        u = batch.eps + (1.0 - batch.eps) * v
        xt, masked, p_any = batch.mask(u, k, self.conditioned)
        return xt, masked, u, v, weight * p_any

    def score(self, batch: BoundBatch, k: int, xt, masked, u, factor, log_probs) -> None:
        """Write draw k's value and integral share from the network's ``log_probs`` (N, V)."""
        rate = continuous_integrand(
            batch.diffusion, u, batch.x0, xt, batch.target_mask, masked, log_probs
        )
        rows = masked.nonzero(as_tuple=True)[0]
        batch.values[:, k].index_add_(0, rows, (1.0 - batch.eps) * rate.to(torch.float64))
        batch.values[:, k] *= factor
        batch.integral[:, k] = batch.values[:, k]

    def finish(self, batch: BoundBatch) -> ContinuousDraws:
        """The reconstruction call at u = eps (call K), and the estimate's parts."""
        x0 = batch.x0
        u_eps = torch.full((x0.shape[0],), batch.eps, dtype=torch.float64, device=x0.device)
        xt, masked, p_any = batch.mask(u_eps, batch.mc_samples, self.conditioned)
        log_probs = batch.denoiser(xt, u_eps, masked)
        recon = -log_probs.gather(-1, x0[masked].unsqueeze(-1)).squeeze(-1).to(torch.float64)
        rows = masked.nonzero(as_tuple=True)[0]
        recon = batch.zeros().index_add(0, rows, recon)
        return ContinuousDraws(
            batch.values, batch.times, recon * p_any, batch.integral, batch.zeros()
        )


class Conditioned(ContinuousEstimator):
    """``conditioned``: ``plain``'s times, but every mask is drawn conditioned on masking at
    least one target token and its score multiplied by P(at least one masked | u). The
    expectation is the same (a draw that masks nothing scores exactly 0), and the 0-or-large
    split is gone. The reconstruction step at u = eps is treated the same way."""

    name = "conditioned"
    summary = "masks conditioned on masking one, scaled by its probability"
    conditioned = True


class Importance(Conditioned):
    """``importance``: ``conditioned`` with the times drawn from a ``TimeProposal`` (a
    piecewise-constant density of v, stratified in its inverse CDF), each draw's score
    divided by the density at its time."""

    name = "importance"
    summary = "conditioned, times from a fitted proposal"
    uses_proposal = True


class Antithetic(ContinuousEstimator):
    """``antithetic``: draws in pairs: a stratified time v with mask uniforms U, then its
    mirror, time 1 − v with uniforms 1 − U (where one masks a token the other tends to keep).
    Each draw alone is a draw of ``plain``, so the average stays unbiased."""

    name = "antithetic"
    summary = "plain in mirrored pairs"

    def uniform(self, batch: BoundBatch, k: int) -> torch.Tensor:
        return stratified(batch.offsets, k // 2, (batch.mc_samples + 1) // 2)

    def draw(self, batch: BoundBatch, k: int):
        if k % 2 == 0:
            return super().draw(batch, k)
        v = 1.0 - batch.times[:, k - 1]
        u = batch.eps + (1.0 - batch.eps) * v
        xt, masked = batch.diffusion.q_sample(
            batch.x0, batch.target_mask, u, discrete=False, draw=1.0 - batch.noise.mask(k - 1)
        )
        return xt, masked, u, v, torch.ones_like(v)


class RaoBlackwell(Conditioned):
    """``rao_blackwell``: ``conditioned``'s draws, each score replaced by its expectation over
    the time given the mask. For a network that does not see the time (``--timestep none``)
    the output depends on the mask M only, so E[score | M] = ∫ P(M | u) f(u, M) du /
    ∫ P(M | u) / P(any | u) du, with f(u, M) = Σ_{i∈M} ρ_i(u) · (−log p_θ(x0_i | M)): two 1-D
    integrals by quadrature (``rao_blackwell.time_given_mask``), no further call. Each draw
    carries its own unbiased share of the reconstruction, so there is no call at eps. It
    needs the true reveal rate ρ_i to be the model's (no spindle, or the ``official``
    protocol), and a time-agnostic network."""

    name = "rao_blackwell"
    summary = (
        "conditioned, each score averaged over the time given its mask: --timestep "
        "none models without the spindle"
    )
    time_agnostic = True
    carries_reconstruction = True

    def score(self, batch: BoundBatch, k: int, xt, masked, u, factor, log_probs) -> None:
        x0, eps = batch.x0, batch.eps
        nll = torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
        target = x0[masked].unsqueeze(-1)
        nll[masked] = -log_probs.gather(-1, target).squeeze(-1).to(torch.float64)
        nll = nll - batch.baseline_nll * masked
        part, recon = time_given_mask(batch.diffusion, x0, batch.target_mask, masked, nll, eps)
        batch.values[:, k] = (1.0 - eps) * part + recon + batch.baseline
        batch.integral[:, k], batch.shares[:, k] = (1.0 - eps) * part, recon
        batch.nlls.append(nll)
        batch.masks.append(masked)

    def finish(self, batch: BoundBatch) -> ContinuousDraws:
        return ContinuousDraws(
            batch.values,
            batch.times,
            batch.zeros(),
            batch.integral,
            batch.shares.mean(1),
            self.profile(batch),
        )

    def profile(self, batch: BoundBatch) -> torch.Tensor | None:
        """The fixed per-token NLLs (B, L) whose bound is in every draw's value, or None."""
        return None


class RaoBlackwellCV(RaoBlackwell):
    """``rao_blackwell_cv``: ``rao_blackwell`` with a control variate. One more network call
    gives every target token's NLL with all targets masked, g_i (``context_free``, made
    first). The same score computed with g in place of the network's NLLs has a known
    expectation, Σ_i g_i (1 − ᾱ_i(1)) (the bound of a network that ignores the context), so
    each draw scores that plus the ``rao_blackwell`` score of the differences nll_i − g_i: only
    what the context adds is left to Monte Carlo. Unbiased for any g; its variance is small
    when the context changes the NLLs little."""

    name = "rao_blackwell_cv"
    summary = (
        "rao_blackwell minus a control variate, the NLLs with every token masked, "
        "whose expectation is known; one more call"
    )
    carries_reconstruction = False  # its one extra call is the all-masked one

    def start(self, batch: BoundBatch) -> None:
        batch.baseline_nll, batch.baseline = context_free(
            batch.diffusion, batch.denoiser, batch.x0, batch.target_mask
        )

    def profile(self, batch: BoundBatch) -> torch.Tensor | None:
        return batch.baseline_nll


class RaoBlackwellLOO(RaoBlackwell):
    """``rao_blackwell_loo``: ``rao_blackwell`` with a leave-one-out control variate and no
    extra call. Draw k's times are independent uniforms (not stratified), so the other draws
    tell nothing about draw k's mask; v^(−k)_i, token i's mean NLL over the other draws that
    mask it (0 where none does), is then a fixed value for draw k, and draw k scores its
    ``rao_blackwell`` score minus the same score computed with v^(−k), plus that score's known
    expectation Σ_i v^(−k)_i (1 − ᾱ_i(1)). Each draw stays unbiased; what is left to chance is
    how a token's NLL moves with the rest of the mask. The draws share their values, so the
    standard error from their spread is a large-K approximation."""

    name = "rao_blackwell_loo"
    summary = (
        "rao_blackwell with independent times, minus a control variate from each "
        "token's NLLs in the other draws; no extra call"
    )

    def uniform(self, batch: BoundBatch, k: int) -> torch.Tensor:
        return batch.noise.time(k)

    def finish(self, batch: BoundBatch) -> ContinuousDraws:
        nll, masked, eps = torch.stack(batch.nlls), torch.stack(batch.masks), batch.eps
        part, recon, expected = leave_one_out_control(
            batch.diffusion, batch.x0, batch.target_mask, nll, masked, eps
        )
        batch.values -= (1.0 - eps) * part + recon - expected
        batch.integral -= (1.0 - eps) * part
        batch.shares -= recon
        profile = leave_one_out_values(nll, masked).mean(0)
        return ContinuousDraws(
            batch.values, batch.times, batch.zeros(), batch.integral, batch.shares.mean(1), profile
        )


ESTIMATORS: dict[str, type[ContinuousEstimator]] = {
    cls.name: cls
    for cls in (
        ContinuousEstimator,
        Conditioned,
        Importance,
        Antithetic,
        RaoBlackwell,
        RaoBlackwellCV,
        RaoBlackwellLOO,
    )
}
TIME_AGNOSTIC = tuple(name for name, cls in ESTIMATORS.items() if cls.time_agnostic)


def check_estimator(estimator: str) -> None:
    """Raise ParameterError("estimator") unless it is one of ``ESTIMATORS``."""
    if estimator not in ESTIMATORS:
        choices = ", ".join(ESTIMATORS)
        raise ParameterError(
            "estimator", f"estimator {estimator!r} is unknown: choose one of {choices}"
        )


def make_estimator(name: str, proposal: TimeProposal | None = None) -> ContinuousEstimator:
    """The estimator called ``name`` (``proposal``: its time density, where it uses one)."""
    check_estimator(name)
    return ESTIMATORS[name](proposal)


def network_calls(estimator: str, draws: int) -> int:
    """Network calls of the continuous bound with ``draws`` draws: one each, plus the
    reconstruction at eps (none where the draws carry it) or a control variate's call."""
    check_estimator(estimator)
    return draws + (not ESTIMATORS[estimator].carries_reconstruction)


def estimator_help() -> str:
    """Every estimator's name and summary, for a ``--estimator`` help text."""
    return "; ".join(f"{name} ({cls.summary})" for name, cls in ESTIMATORS.items())
