"""Losses vs hand-computed values and vs liger's chunked-loss functions (pure torch, run on CPU)."""
import math

import pytest
import torch
import torch.nn.functional as F

from longrm import losses as L


def lsig(x):
    return -math.log(1 + math.exp(-x))


def test_group_branches_orders_and_masks():
    vals = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], requires_grad=True)
    ex = torch.tensor([0, 0, 0, 1, 1])
    rank = torch.tensor([0, 2, 1, 1, 0])
    c, r, m = L.group_branches(vals, ex, rank, 2)
    assert c.tolist() == [1.0, 5.0]
    assert r.tolist() == [[3.0, 2.0], [4.0, 0.0]]
    assert m.tolist() == [[True, True], [True, False]]
    (c.sum() + (r * m).sum()).backward()
    assert vals.grad.tolist() == [1.0] * 5


def test_group_branches_needs_chosen():
    with pytest.raises(ValueError):
        L.group_branches(torch.ones(2), torch.tensor([0, 0]), torch.tensor([1, 2]), 1)


def test_logo_hand_computed():
    c = torch.tensor([-1.0])
    r = torch.tensor([[-2.0, -3.0]])
    out = L.logo(c, r)  # β 2.5, γ 0.5, λ 0.05
    delta = -1.0 - (-2.5)
    expect = -lsig(2.5 * delta - 0.5) + 0.05 * 1.0
    assert out.loss.item() == pytest.approx(expect, rel=1e-6)
    assert out.metrics["reward_margin"].item() == pytest.approx(2.5 * delta)
    assert out.metrics["accuracy"].item() == 1.0


def test_logo_mask_ignores_padded_rejects():
    c = torch.tensor([-1.0, -1.0])
    r = torch.tensor([[-2.0, 99.0], [-2.0, -2.0]])
    m = torch.tensor([[True, False], [True, True]])
    out = L.logo(c, r, m, beta=1.0, gamma=0.0, nll_weight=0.0)
    assert out.loss.item() == pytest.approx(-lsig(1.0), rel=1e-6)
    assert out.metrics["accuracy"].item() == 1.0


def test_dpo_hand_computed_and_label_smoothing():
    pc, pr = torch.tensor([-10.0]), torch.tensor([[-12.0]])
    rc, rr = torch.tensor([-11.0]), torch.tensor([[-11.5]])
    z = 0.1 * ((-10 + 11) - (-12 + 11.5))
    assert L.dpo_sigmoid(pc, pr, rc, rr).loss.item() == pytest.approx(-lsig(z), rel=1e-6)
    ls = L.dpo_sigmoid(pc, pr, rc, rr, label_smoothing=0.2).loss.item()
    assert ls == pytest.approx(-0.8 * lsig(z) - 0.2 * lsig(-z), rel=1e-6)


def test_dpo_at_reference_is_log2():
    x = torch.randn(3)
    y = torch.randn(3, 2)
    assert L.dpo_sigmoid(x, y, x.clone(), y.clone()).loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_bradley_terry_hand_computed():
    out = L.bradley_terry(torch.tensor([1.0, 0.0]), torch.tensor([[0.0, -1.0], [1.0, 3.0]]))
    expect = (-lsig(1.5) - lsig(-2.0)) / 2
    assert out.loss.item() == pytest.approx(expect, rel=1e-6)
    assert out.metrics["accuracy"].item() == 0.5


def test_bradley_terry_pairs_hand_computed_and_not_carried_by_one_low_reject():
    c = torch.tensor([1.0, 0.0])
    r = torch.tensor([[2.0, -19.0, 5.0], [1.0, 3.0, 0.0]])
    m = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    out = L.bradley_terry(c, r, m, reduce="pairs")
    expect = ((-lsig(-1.0) - lsig(20.0)) / 2 + (-lsig(-1.0) - lsig(-3.0) - lsig(0.0)) / 3) / 2
    assert out.loss.item() == pytest.approx(expect, rel=1e-6)
    # example 0: the averaged reject (-8.5) is far below the chosen one, so "mean" barely charges the near miss
    # (2.0 > 1.0) that "pairs" charges in full
    assert L.bradley_terry(c[:1], r[:1], m[:1]).loss.item() < 0.01 < out.loss.item()
    with pytest.raises(ValueError, match="reduce"):
        L.bradley_terry(c, r, m, reduce="max")


def test_pointwise_bce_hand_computed():
    # VerifyRM pre-training (REFERENCE §2): −[y·log σ(s) + (1 − y)·log(1 − σ(s))], batch mean; accuracy 1[s > 0] = y
    out = L.pointwise_bce(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 1, 0]))
    expect = (-lsig(2.0) - lsig(-1.0) - lsig(-0.5)) / 3
    assert out.loss.item() == pytest.approx(expect, rel=1e-6)
    assert out.metrics["accuracy"].item() == pytest.approx(1 / 3)
    assert out.metrics["predicted_positive"].item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        L.pointwise_bce(torch.zeros(3), torch.zeros(2))


def test_sft_nll_token_mean():
    out = L.sft_nll(torch.tensor([-3.0, -1.0]), torch.tensor([2, 2]))
    assert out.loss.item() == pytest.approx(1.0)


# ---- against liger's chunked losses on the same hidden states / head ----

def _setup(b=2, t=6, h=8, v=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    hid = torch.randn(2 * b, t, h, generator=g, dtype=torch.float64)
    w = torch.randn(v, h, generator=g, dtype=torch.float64) * 0.5
    tgt = torch.randint(0, v, (2 * b, t), generator=g)
    tgt[b:, :2] = -100  # rejects: different (shorter) lengths
    tgt[b + 1:, 4:] = -100
    return hid, w, tgt


def _torch_logps(hid, w, tgt, average):
    lp = F.log_softmax(hid @ w.t(), dim=-1)
    mask = tgt != -100
    tok = lp.gather(-1, tgt.clamp_min(0).unsqueeze(-1)).squeeze(-1) * mask
    s, n = tok.sum(-1), mask.sum(-1)
    return L.average_logps(s, n) if average else s


def test_logo_v1_matches_liger_simpo():
    from liger_kernel.chunked_loss.simpo_loss import LigerFusedLinearSimPOFunction

    hid, w, tgt = _setup()
    b = hid.shape[0] // 2
    beta, gamma, lam = 2.5, 0.5, 0.05
    h1, w1 = hid.clone().requires_grad_(), w.clone().requires_grad_()
    ref_loss, _ = LigerFusedLinearSimPOFunction.apply(h1, w1, tgt, None, -100, beta, lam, 0.0, True, False, gamma, 1)
    ref_loss.backward()
    h2, w2 = hid.clone().requires_grad_(), w.clone().requires_grad_()
    lp = _torch_logps(h2, w2, tgt, average=True)
    out = L.logo(lp[:b], lp[b:].unsqueeze(-1), beta=beta, gamma=gamma, nll_weight=lam)
    out.loss.backward()
    torch.testing.assert_close(out.loss, ref_loss, check_dtype=False)
    torch.testing.assert_close(h2.grad, h1.grad)
    torch.testing.assert_close(w2.grad, w1.grad)


def test_dpo_matches_liger_dpo():
    from liger_kernel.chunked_loss.dpo_loss import LigerFusedLinearDPOFunction

    hid, w, tgt = _setup(seed=1)
    b = hid.shape[0] // 2
    g = torch.Generator().manual_seed(5)
    ref_hid = hid + 0.3 * torch.randn(hid.shape, generator=g, dtype=hid.dtype)
    ref_w = w + 0.1 * torch.randn(w.shape, generator=g, dtype=w.dtype)
    h1, w1 = hid.clone().requires_grad_(), w.clone().requires_grad_()
    ref_loss, _ = LigerFusedLinearDPOFunction.apply(h1, w1, tgt, None, ref_hid, ref_w, None, -100, 0.1, False, False,
                                                    True, False, 1, "sigmoid")
    ref_loss.backward()
    h2, w2 = hid.clone().requires_grad_(), w.clone().requires_grad_()
    lp = _torch_logps(h2, w2, tgt, average=False)
    with torch.no_grad():
        rlp = _torch_logps(ref_hid, ref_w, tgt, average=False)
    out = L.dpo_sigmoid(lp[:b], lp[b:].unsqueeze(-1), rlp[:b], rlp[b:].unsqueeze(-1), beta=0.1)
    out.loss.backward()
    torch.testing.assert_close(out.loss, ref_loss, check_dtype=False)
    torch.testing.assert_close(h2.grad, h1.grad)
    torch.testing.assert_close(w2.grad, w1.grad)


def test_torch_judgement_nll_matches_liger_chunked_nll():
    """The CPU path of the SFT loss vs the NLL term of liger's chunked loss (β = γ = 0 leaves only it)."""
    from liger_kernel.chunked_loss.simpo_loss import LigerFusedLinearSimPOFunction

    hid, w, tgt = _setup(b=1, t=9, seed=2)
    tgt[0, :3] = -100  # prompt positions carry no loss
    h1, w1 = hid.clone().requires_grad_(), w.clone().requires_grad_()
    ref_loss, aux = LigerFusedLinearSimPOFunction.apply(h1, w1, tgt, None, -100, 0.0, 1.0, 0.0, True, False, 0.0, 1)
    ref_loss.backward()  # = nll + log 2 (a constant): same gradient as the NLL alone
    h2, w2 = hid.clone().requires_grad_(), w.clone().requires_grad_()
    nll = L.judgement_nll_from_hidden(h2[0], w2, tgt[0], chunk_size=4)
    nll.backward()
    torch.testing.assert_close(nll, aux[4], check_dtype=False)
    torch.testing.assert_close(nll + math.log(2), ref_loss, check_dtype=False)
    torch.testing.assert_close(h2.grad[0], h1.grad[0])
    torch.testing.assert_close(w2.grad, w1.grad)


def test_liger_nll_refused_on_cpu():
    with pytest.raises(RuntimeError):
        L.judgement_nll_from_hidden(torch.randn(3, 4), torch.randn(5, 4), torch.tensor([1, 2, 3]), use_liger=True)
