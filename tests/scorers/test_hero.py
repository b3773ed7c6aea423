"""HERO (REFERENCE §3) against hand-computed values on crafted groups."""
import math

import pytest
import torch

from longrm.scorers import HeroSection, ScorerConfig
from longrm.scorers.base import has_hook
from longrm.scorers.hero import HeroScorer, stratified_rewards, variance_weights

# two prompts, 4 rollouts each
RM = torch.tensor([0.2, 0.8, 0.5, 0.1, 0.3, 0.3, 0.9, 0.6])
RULE = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_stratified_rewards_by_hand():
    got = stratified_rewards(RM, RULE, GROUPS, alpha=0.1, beta=0.1, eps=0.0)
    # g0 rule=1 {0.2, 0.8}: 0.9 + 0.2*(0/0.6), 0.9 + 0.2*(0.6/0.6); rule=0 {0.5, 0.1}: -0.1 + 0.2*(0.4/0.4), -0.1 + 0
    # g1 rule=1 {0.3} alone -> 0.9; rule=0 {0.3, 0.9, 0.6}: -0.1, -0.1 + 0.2, -0.1 + 0.2*(0.3/0.6)
    want = torch.tensor([0.9, 1.1, 0.1, -0.1, -0.1, 0.9, 0.1, 0.0])
    assert torch.allclose(got, want, atol=1e-6)
    # ε enters the denominator: rule=1 of g0 gets 0.9 + 0.2*0.6/(0.6+0.1)
    got_eps = stratified_rewards(RM, RULE, GROUPS, alpha=0.1, beta=0.1, eps=0.1)
    assert got_eps[1].item() == pytest.approx(0.9 + 0.2 * 0.6 / 0.7, abs=1e-6)
    # every correct rollout outranks every wrong one of the same prompt
    for g in (0, 1):
        m = GROUPS == g
        assert got[m & (RULE == 1)].min() > got[m & (RULE == 0)].max()


def test_single_member_strata_and_equal_scores():
    r = stratified_rewards(torch.tensor([5.0, -2.0]), torch.tensor([1.0, 0.0]), torch.tensor([0, 0]), alpha=0.05, beta=0.05)
    assert r.tolist() == pytest.approx([0.95, -0.05])
    same = stratified_rewards(torch.tensor([1.0, 1.0, 1.0]), torch.zeros(3), torch.zeros(3, dtype=torch.long), alpha=0.05)
    assert same.tolist() == pytest.approx([-0.05] * 3)  # max == min: normalised term 0/(0+ε)


def test_variance_weights_by_hand():
    # population std: g0 mean 0.4, squared deviations .04 .16 .01 .09 -> sqrt(0.30/4); g1 mean 0.525 -> sqrt(0.2475/4)
    s0, s1 = math.sqrt(0.075), math.sqrt(0.061875)
    w, su = variance_weights(RM, GROUPS, sigma_bar=0.25, w_min=0.4, w_max=3.0, k=6.0)
    assert su.tolist() == pytest.approx([s0, s1], abs=1e-6)
    w0, w1 = 0.4 + 2.6 * sig(6 * (s0 - 0.25)), 0.4 + 2.6 * sig(6 * (s1 - 0.25))
    assert w.tolist() == pytest.approx([w0] * 4 + [w1] * 4, abs=1e-6)


def test_group_transform_tracks_running_sigma():
    h = HeroScorer(rm=None, alpha=0.1, beta=0.1, eps=0.0, w_min=0.5, w_max=2.0, k=5.0, ema_momentum=0.9)
    assert not has_hook(h, "update")  # an RM without update: no hook
    s0, s1 = math.sqrt(0.075), math.sqrt(0.061875)
    first = h.group_transform(RM, GROUPS, RULE)
    bar1 = (s0 + s1) / 2  # first batch: σ̄ starts at the batch mean and the weights use it
    assert h.sigma_bar == pytest.approx(bar1, abs=1e-6)
    assert first.advantage_weight.tolist() == pytest.approx(
        [0.5 + 1.5 * sig(5 * (s0 - bar1))] * 4 + [0.5 + 1.5 * sig(5 * (s1 - bar1))] * 4, abs=1e-6)
    assert torch.allclose(first.rewards, torch.tensor([0.9, 1.1, 0.1, -0.1, -0.1, 0.9, 0.1, 0.0]), atol=1e-6)
    # second batch: RM scores doubled -> stds doubled; the weights use σ̄ of the previous batch, then σ̄ moves
    second = h.group_transform(RM * 2, GROUPS, RULE)
    assert second.advantage_weight[0].item() == pytest.approx(0.5 + 1.5 * sig(5 * (2 * s0 - bar1)), abs=1e-6)
    assert h.sigma_bar == pytest.approx(0.9 * bar1 + 0.1 * (2 * s0 + 2 * s1) / 2, abs=1e-6)
    assert second.metrics["hero/sigma_bar"] == pytest.approx(h.sigma_bar)
    with pytest.raises(ValueError, match="rule score"):
        h.group_transform(RM, GROUPS, torch.full((8,), float("nan")))


def test_defaults_are_reference_defaults():
    h = ScorerConfig().hero
    assert (h.alpha, h.beta, h.w_min, h.w_max, h.k) == (0.05, 0.05, 0.4, 3.0, 6.0)
    assert isinstance(ScorerConfig(name="hero").hero, HeroSection)


def test_state_dict_roundtrip():
    h = HeroScorer(rm=None)
    h.group_transform(RM, GROUPS, RULE)
    h2 = HeroScorer(rm=None)
    h2.load_state_dict(h.state_dict())
    assert h2.sigma_bar == h.sigma_bar
    assert torch.equal(h2.group_transform(RM, GROUPS, RULE).advantage_weight, h.group_transform(RM, GROUPS, RULE).advantage_weight)
