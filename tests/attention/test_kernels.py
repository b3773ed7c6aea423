"""Kernel seam: block kernels with log-sum-exp, layout attention vs a dense masked reference, SP plans."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compute_helpers import tiny_model  # noqa: E402

from longrm.attention import block_attention, block_attention_backward, build_plan, layout_attention  # noqa: E402
from longrm.attention.hf import ATTN_NAME, register  # noqa: E402
from longrm.data.layout import pack, shared_context_example  # noqa: E402
from longrm.parallel.context import ParallelContext  # noqa: E402


def layout_mask(doc, br):
    """The layout rule as a dense bool mask [L, L] (reference only)."""
    i, j = torch.arange(doc.numel())[:, None], torch.arange(doc.numel())[None, :]
    return (doc[:, None] == doc[None, :]) & (j <= i) & ((br[None, :] == 0) | (br[None, :] == br[:, None]))


def sample_batch():
    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(3, 100, (n,), generator=g).tolist()  # noqa: E731
    exs = [
        shared_context_example(ids(11), [ids(4), ids(6), ids(1)]),
        shared_context_example([], [ids(7)]),
        shared_context_example(ids(5), [ids(3)]),
    ]
    return pack(exs, pad_to_multiple_of=8)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("math_kernel", [False, True])
def test_block_attention_returns_lse_and_exact_grads(causal, math_kernel):
    torch.manual_seed(0)
    q = torch.randn(1, 4, 9, 16, requires_grad=True)
    lk = 9 if causal else 13
    k, v = torch.randn(1, 2, lk, 16, requires_grad=True), torch.randn(1, 2, lk, 16, requires_grad=True)
    out, lse = block_attention(q, k, v, causal, 0.25, math_kernel)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.25, enable_gqa=True)
    s = (q @ k.repeat_interleave(2, 1).transpose(-1, -2)) * 0.25
    if causal:
        s = s.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lse, torch.logsumexp(s, -1), atol=1e-5, rtol=1e-5)
    dout = torch.randn_like(out)
    dq, dk, dv = block_attention_backward(dout, q, k, v, out, lse, causal, 0.25, math_kernel)
    rq, rk, rv = torch.autograd.grad(ref, (q, k, v), dout)
    for a, b in ((dq, rq), (dk, rk), (dv, rv)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("math_kernel", [False, True])
@pytest.mark.parametrize("head_stride", [0, 1])
def test_layout_attention_matches_dense_masked_reference(math_kernel, head_stride):
    batch = sample_batch()
    L = batch.length
    torch.manual_seed(1)
    q = torch.randn(1, 4, L, 16, requires_grad=True)
    k, v = torch.randn(1, 2, L, 16, requires_grad=True), torch.randn(1, 2, L, 16, requires_grad=True)
    plan = build_plan(batch.doc_ids, batch.branch_ids, ParallelContext.single(), "torch", head_stride, math_kernel)
    out = layout_attention(q, k, v, plan, 0.25)  # [1, L, Hq, D]
    assert out.shape == (1, L, 4, 16) and out.is_contiguous()
    mask = layout_mask(batch.doc_ids[0], batch.branch_ids[0])
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.25, enable_gqa=True).transpose(1, 2)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    dout = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), dout)
    want = torch.autograd.grad(ref, (q, k, v), dout)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", ["zigzag", "contiguous"])
@pytest.mark.parametrize("sp_size", [1, 2, 3, 4])
def test_plan_pieces_cover_layout_rule_exactly_once_per_rank(sp_size, layout):
    batch = sample_batch()
    div = ParallelContext(sp_size, 0, sp_size, 0, 1, 0, sp_layout=layout).length_divisor
    b = batch.padded(-(-batch.length // div) * div)
    mask = layout_mask(b.doc_ids[0], b.branch_ids[0])
    for r in range(sp_size):
        par = ParallelContext(sp_size, r, sp_size, r, 1, 0, sp_layout=layout)
        plan = build_plan(b.doc_ids, b.branch_ids, par)
        idx = par.shard_index(b.length)  # global row of each local row
        assert plan.local_length == idx.numel() == b.length // sp_size
        cover = torch.zeros(plan.local_length, b.length, dtype=torch.int)
        for p in plan.pieces:
            if p.causal:
                assert p.q1 - p.q0 == p.k1 - p.k0 and torch.equal(idx[p.q0 : p.q1], torch.arange(p.k0, p.k1))
                blk = torch.ones(p.q1 - p.q0, p.k1 - p.k0, dtype=torch.int).tril()
            else:
                blk = torch.ones(p.q1 - p.q0, p.k1 - p.k0, dtype=torch.int)
            cover[p.q0 : p.q1, p.k0 : p.k1] += blk
        assert cover.max() == 1
        assert torch.equal(cover.bool(), mask[idx])


def test_registered_function_without_plan_falls_back_to_causal_sdpa():
    register()
    model = tiny_model("llama").eval()
    ids = torch.randint(3, 1000, (2, 12))
    ref = model(input_ids=ids).logits
    model.set_attn_implementation(ATTN_NAME)
    torch.testing.assert_close(model(input_ids=ids).logits, ref, atol=1e-5, rtol=1e-5)
