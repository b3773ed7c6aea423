"""Judgement-only, chunked log-probs equal the full-logits computation (values and gradients)."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compute_helpers import grads, max_rel, rand_ids, tiny_model  # noqa: E402

from longrm.data.layout import pack, shared_context_example  # noqa: E402
from longrm.modeling import branch_logprobs, prepare_model, target_logprobs  # noqa: E402
from longrm.parallel.context import ParallelContext  # noqa: E402


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_target_logprobs_chunked_equals_full_logits(bias, chunk):
    torch.manual_seed(0)
    head = torch.nn.Linear(32, 500, bias=bias)
    h = torch.randn(23, 32, requires_grad=True)
    y = torch.randint(0, 500, (23,))
    g = torch.randn(23)
    full = F.log_softmax(head(h), -1).gather(1, y[:, None])[:, 0]
    want = torch.autograd.grad((full * g).sum(), [h, *head.parameters()])
    got_val = target_logprobs(h, head, y, chunk)
    got = torch.autograd.grad((got_val * g).sum(), [h, *head.parameters()])
    torch.testing.assert_close(got_val, full, atol=1e-5, rtol=1e-5)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_branch_logprobs_equal_full_logits_of_the_same_row():
    g = torch.Generator().manual_seed(2)
    model = tiny_model("qwen2")  # tied embeddings: the head's gradient also reaches the input embedding
    batch = pack([shared_context_example(rand_ids(g, 30), [rand_ids(g, 8), rand_ids(g, 5)])])
    par = ParallelContext.single()
    prepare_model(model, par, "torch")
    lp, cnt = branch_logprobs(model, batch, par, chunk_size=3)
    (lp.sum() / cnt.sum()).backward()
    got = grads(model)
    model.zero_grad(set_to_none=True)

    from longrm.attention import build_plan

    plan = build_plan(batch.doc_ids, batch.branch_ids, par, "torch")
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, longrm_attention=plan).logits[0]
    tgt, tb = batch.target_ids[0], batch.target_branch[0]
    sel = tgt != -100
    tok = F.log_softmax(logits[sel].float(), -1).gather(1, tgt[sel][:, None])[:, 0]
    full = torch.zeros(2).index_add(0, tb[sel], tok)
    (full.sum() / cnt.sum()).backward()
    torch.testing.assert_close(lp, full.detach(), atol=1e-5, rtol=1e-5)
    err, name = max_rel(got, grads(model))
    assert err < 1e-5, (err, name)


@pytest.mark.parametrize("chunk", [5, 1000])  # recomputing backward / backward from the saved softmax
def test_target_logprobs_backward_twice_with_retain_graph(chunk):
    """The backward never overwrites what the forward saved: a second (retain_graph) backward is identical."""
    torch.manual_seed(1)
    head = torch.nn.Linear(16, 300, bias=True)
    h = torch.randn(37, 16, requires_grad=True)
    y = torch.randint(0, 300, (37,))
    lp = target_logprobs(h, head, y, chunk)
    first = torch.autograd.grad(lp.sum(), [h, *head.parameters()], retain_graph=True)
    second = torch.autograd.grad(lp.sum(), [h, *head.parameters()])
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [False, True])
def test_target_logprobs_vocab_tiles_equal_full_logits(monkeypatch, bias, dtype):
    """The recompute mode (T > chunk) in several row blocks and vocabulary tiles, the last tile narrower."""
    import longrm.modeling.forward as fwd

    monkeypatch.setattr(fwd, "_VTILE", 64)
    monkeypatch.setattr(fwd, "_ROWS", 8)
    torch.manual_seed(3)
    head = torch.nn.Linear(32, 500, bias=bias).to(dtype)
    h = torch.randn(23, 32, dtype=dtype, requires_grad=True)
    y = torch.randint(0, 500, (23,))
    g = torch.randn(23)
    full = F.log_softmax(head(h).float(), -1).gather(1, y[:, None])[:, 0]
    want = torch.autograd.grad((full * g).sum(), [h, *head.parameters()])
    got_val = target_logprobs(h, head, y, chunk_size=5)
    got = torch.autograd.grad((got_val * g).sum(), [h, *head.parameters()])
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got_val, full, atol=tol, rtol=tol)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.float(), b.float(), atol=tol, rtol=tol)
