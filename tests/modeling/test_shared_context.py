"""Shared context: per-judgement log-probs / rewards and every parameter gradient equal the naive form
(each judgement on its own copy of the context, plain sdpa) within 1e-5 relative in fp32."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compute_helpers import grads, max_rel, naive_branch_logprobs, naive_branch_rewards, rand_ids, tiny_model  # noqa: E402

from longrm.data.layout import pack, shared_context_example  # noqa: E402
from longrm.modeling import branch_logprobs, branch_rewards, prepare_model  # noqa: E402
from longrm.parallel.context import ParallelContext  # noqa: E402


def examples(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (rand_ids(g, 23), [rand_ids(g, n) for n in (5, 9, 1, 7)]),  # chosen + 3 rejects
        (rand_ids(g, 12), [rand_ids(g, n) for n in (6, 3, 4)]),
    ]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("ckpt", [False, True])
def test_shared_context_logprobs_and_grads_equal_naive(arch, ckpt):
    model = tiny_model(arch)
    model.train()
    exs = examples()
    torch.manual_seed(3)
    n_br = sum(len(b) for _, b in exs)
    w = torch.randn(n_br)  # arbitrary per-branch loss weights: checks each branch's gradient path
    ref = torch.cat([naive_branch_logprobs(model, p, b) for p, b in exs])
    (ref * w).sum().backward()
    ref_grads = grads(model)
    model.zero_grad(set_to_none=True)

    par = ParallelContext.single()
    prepare_model(model, par, "torch")
    if ckpt:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    batch = pack([shared_context_example(p, b) for p, b in exs], pad_to_multiple_of=16)
    logp, counts = branch_logprobs(model, batch, par, chunk_size=5)
    assert counts.tolist() == [len(x) for _, b in exs for x in b]
    torch.testing.assert_close(logp, ref.detach(), rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    (logp * w).sum().backward()
    err, name = max_rel(grads(model), ref_grads)
    assert err < 1e-5, (err, name)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_shared_context_rewards_and_grads_equal_naive(arch):
    model = tiny_model(arch, kind="reward")
    exs = examples(1)
    torch.manual_seed(4)
    w = torch.randn(sum(len(b) for _, b in exs))
    ref = torch.cat([naive_branch_rewards(model, p, b) for p, b in exs])
    (ref * w).sum().backward()
    ref_grads = grads(model)
    model.zero_grad(set_to_none=True)

    par = ParallelContext.single()
    prepare_model(model, par, "torch")
    batch = pack([shared_context_example(p, b) for p, b in exs], pad_to_multiple_of=16)
    r = branch_rewards(model, batch, par)
    torch.testing.assert_close(r, ref.detach(), rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    (r * w).sum().backward()
    err, name = max_rel(grads(model), ref_grads)
    assert err < 1e-5, (err, name)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_branch_prompt_suffixes_equal_naive(arch):
    """Cross-response rejects (each branch continues the shared prompt with its own suffix, e.g. another response):
    log-probs and gradients equal each judgement scored on its own full prompt."""
    model = tiny_model(arch)
    model.train()
    g = torch.Generator().manual_seed(5)
    shared = rand_ids(g, 19)
    suffixes = [rand_ids(g, n) for n in (4, 0, 6)]
    judgements = [rand_ids(g, n) for n in (5, 5, 3)]
    torch.manual_seed(6)
    w = torch.randn(3)
    ref = torch.stack([naive_branch_logprobs(model, shared + s, [j])[0] for s, j in zip(suffixes, judgements)])
    (ref * w).sum().backward()
    ref_grads = grads(model)
    model.zero_grad(set_to_none=True)

    par = ParallelContext.single()
    prepare_model(model, par, "torch")
    ex = shared_context_example(shared, judgements, prefixes=suffixes)
    batch = pack([ex, shared_context_example(rand_ids(g, 7), [rand_ids(g, 3)])], pad_to_multiple_of=16)
    logp, counts = branch_logprobs(model, batch, par, chunk_size=4)
    assert counts.tolist()[:3] == [5, 5, 3]
    torch.testing.assert_close(logp[:3], ref.detach(), rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    (logp[:3] * w).sum().backward()
    err, name = max_rel(grads(model), ref_grads)
    assert err < 1e-5, (err, name)
