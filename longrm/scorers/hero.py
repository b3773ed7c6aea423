"""``hero`` scorer: HERO hybrid rule + RM reward (REFERENCE §3, arXiv 2510.07242).

For one prompt's N rollouts with rule scores r_rule ∈ {0, 1} and raw RM scores r_RM, each stratum (the
rollouts sharing a rule score) is min/max-normalised on its own:

    r_rule = 0:  r̂ = −α + 2α·(r_RM − min_S)/(max_S − min_S + ε)        ∈ [−α, α]
    r_rule = 1:  r̂ = (1−β) + 2β·(r_RM − min_S)/(max_S − min_S + ε)     ∈ [1−β, 1+β]

with min_S / max_S over the stratum S of that rollout; a stratum of one member gets the normalised term 0
(r̂ = −α, or 1−β).  Correct answers therefore always outrank wrong ones, and the RM only orders rollouts
inside a stratum.

Variance-aware weight, one per prompt:  w = w_min + (w_max − w_min)·sigmoid(k·(σ_u − σ̄)), σ_u = std of the
raw RM scores over the prompt's rollouts (population std), σ̄ a running mean of σ_u (EMA with momentum m over
batches: σ̄ ← m·σ̄ + (1−m)·mean_prompts(σ_u); the first batch initialises it to its mean; w of a batch uses σ̄
*before* that batch's update).  Under std-normalised GRPO advantages a per-group constant would cancel, so w
multiplies the **advantages**, not the rewards (§3 "Important").

Defaults: α = β = 0.05 (verifiable data; 0.1 for mixed/hard), (w_min, w_max, k) = (0.4, 3.0, 6.0) (the other
source: (0.5, 2.0, 5.0)), ε = 1e-6, m = 0.9.  The RM is any other scorer (normally ``longrm``).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .base import GroupTransform, Sample

__all__ = ["HeroScorer", "stratified_rewards", "variance_weights", "sig_mean"]


def stratified_rewards(rm: torch.Tensor, rule: torch.Tensor, groups: torch.Tensor, *, alpha: float = 0.05,
                       beta: float = 0.05, eps: float = 1e-6) -> torch.Tensor:
    """HERO stratified rewards r̂ (REFERENCE §3).

    ``rm``: [N] raw RM scores; ``rule``: [N] rule scores (≥ 0.5 counts as 1); ``groups``: [N] prompt ids.
    Returns [N] float: per (group, stratum) S, ``base + 2·a·(rm − min_S)/(max_S − min_S + ε)`` with
    (base, a) = (−α, α) for r_rule = 0 and (1−β, β) for r_rule = 1; a one-member stratum gets ``base``.
    """
    rm = rm.detach().double()
    ok = rule.detach() >= 0.5
    out = torch.empty_like(rm)
    for g in torch.unique(groups):
        for correct in (False, True):
            idx = ((groups == g) & (ok == correct)).nonzero(as_tuple=True)[0]
            if idx.numel() == 0:
                continue
            base, a = ((1.0 - beta), beta) if correct else (-alpha, alpha)
            if idx.numel() == 1:
                out[idx] = base
                continue
            vals = rm[idx]
            lo, hi = vals.min(), vals.max()
            out[idx] = base + 2.0 * a * (vals - lo) / (hi - lo + eps)
    return out.float()


def variance_weights(rm: torch.Tensor, groups: torch.Tensor, sigma_bar: float, *, w_min: float = 0.4,
                     w_max: float = 3.0, k: float = 6.0) -> tuple[torch.Tensor, torch.Tensor]:
    """HERO variance-aware advantage weights (REFERENCE §3).

    ``rm``: [N] raw RM scores; ``groups``: [N] prompt ids; ``sigma_bar``: the running mean σ̄.
    Returns ``(w, sigma_u)``: w [N] = w_min + (w_max − w_min)·sigmoid(k·(σ_u − σ̄)) with σ_u the population std of
    ``rm`` over the sample's group (repeated over the group), and sigma_u [num groups] in ``unique(groups)`` order.
    """
    rm = rm.detach().double()
    uniq = torch.unique(groups)
    sig = torch.stack([rm[groups == g].std(unbiased=False) for g in uniq])
    w_g = w_min + (w_max - w_min) * torch.sigmoid(k * (sig - sigma_bar))
    w = torch.empty_like(rm)
    for g, wg in zip(uniq, w_g):
        w[groups == g] = wg
    return w.float(), sig.float()


def sig_mean(scores: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Mean over groups of the population std of ``scores`` within each group ([N], [N] → scalar)."""
    s = scores.detach().double()
    return torch.stack([s[groups == g].std(unbiased=False) for g in torch.unique(groups)]).mean()


class HeroScorer:
    """``score`` = the RM's raw scores; ``group_transform`` = stratified rewards + variance-aware advantage weights.

    Keeps σ̄ (``sigma_bar``, None before the first batch) across calls.  ``update`` passes through to the RM
    scorer when it has one (Cooper-style online update of the RM inside HERO).
    """

    name = "hero"

    def __init__(self, rm, *, alpha: float = 0.05, beta: float = 0.05, eps: float = 1e-6, w_min: float = 0.4,
                 w_max: float = 3.0, k: float = 6.0, ema_momentum: float = 0.9):
        self.rm = rm
        self.alpha, self.beta, self.eps = alpha, beta, eps
        self.w_min, self.w_max, self.k, self.m = w_min, w_max, k, ema_momentum
        self.sigma_bar: float | None = None
        if callable(getattr(rm, "update", None)):
            self.update = rm.update  # instance attribute: has_hook(self, "update") follows the RM

    def state_dict(self) -> dict:
        """σ̄ and the RM's own state (for resuming)."""
        rm = self.rm.state_dict() if callable(getattr(self.rm, "state_dict", None)) else {}
        return {"sigma_bar": self.sigma_bar, "rm": rm}

    def load_state_dict(self, state: dict) -> None:
        self.sigma_bar = state.get("sigma_bar")
        if state.get("rm") and callable(getattr(self.rm, "load_state_dict", None)):
            self.rm.load_state_dict(state["rm"])

    def score(self, samples: Sequence[Sample]) -> list[float]:
        """[N] samples → [N] raw RM scores (the group transform turns them into rewards)."""
        return self.rm.score(samples)

    def group_transform(self, scores: torch.Tensor, groups: torch.Tensor, rule_scores: torch.Tensor) -> GroupTransform:
        """[N] raw RM scores, [N] group ids, [N] rule scores → stratified rewards + per-sample advantage weights.

        Every sample needs a rule score (verifiable data): NaN rule scores raise ValueError.
        """
        if torch.isnan(rule_scores).any():
            raise ValueError("hero needs a rule score for every rollout: some prompts have no reference answer")
        if not torch.isfinite(scores).all():
            raise ValueError("hero: RM scores are not finite")
        rewards = stratified_rewards(scores, rule_scores, groups, alpha=self.alpha, beta=self.beta, eps=self.eps)
        # the weights use σ̄ from the previous batches (the first batch: its own mean σ_u), then σ̄ moves
        bar = self.sigma_bar if self.sigma_bar is not None else float(sig_mean(scores, groups))
        w, sig = variance_weights(scores, groups, bar, w_min=self.w_min, w_max=self.w_max, k=self.k)
        batch_mean = float(sig.mean())
        self.sigma_bar = batch_mean if self.sigma_bar is None else self.m * self.sigma_bar + (1 - self.m) * batch_mean
        metrics = {"hero/sigma_bar": self.sigma_bar, "hero/sigma_u": batch_mean, "hero/weight_mean": float(w.mean())}
        return GroupTransform(rewards=rewards, advantage_weight=w, metrics=metrics)
