"""Packing: one packed forward equals separate forwards (outputs and every parameter gradient)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compute_helpers import grads, max_rel, rand_ids, tiny_model  # noqa: E402

from longrm.attention import build_plan  # noqa: E402
from longrm.data.layout import pack, shared_context_example  # noqa: E402
from longrm.modeling import prepare_model  # noqa: E402
from longrm.parallel.context import ParallelContext  # noqa: E402


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_packed_forward_equals_separate_forwards(arch):
    g = torch.Generator().manual_seed(0)
    seqs = [rand_ids(g, n) for n in (11, 4, 17)]
    model = tiny_model(arch)
    torch.manual_seed(5)
    weights = [torch.randn(len(s), 1000) for s in seqs]

    sep = [model(input_ids=torch.tensor([s]), use_cache=False).logits[0] for s in seqs]
    sum(((lg * w).sum() for lg, w in zip(sep, weights))).backward()
    ref_grads = grads(model)
    model.zero_grad(set_to_none=True)

    par = ParallelContext.single()
    prepare_model(model, par, "torch")
    batch = pack([shared_context_example([], [s]) for s in seqs], pad_to_multiple_of=8)
    assert batch.length == 32  # 32 real tokens, no padding needed... keep one pad check below
    batch = batch.padded(35)
    plan = build_plan(batch.doc_ids, batch.branch_ids, par, "torch")
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, longrm_attention=plan).logits[0]
    off = 0
    for s, ref in zip(seqs, sep):
        torch.testing.assert_close(logits[off : off + len(s)], ref, atol=1e-5, rtol=1e-5)
        off += len(s)
    w = torch.cat(weights + [torch.zeros(3, 1000)])
    (logits * w).sum().backward()
    err, name = max_rel(grads(model), ref_grads)
    assert err < 1e-5, (err, name)
