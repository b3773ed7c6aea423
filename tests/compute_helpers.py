"""Shared helpers for the compute-core tests (tiny random models, naive references, comparisons)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

VOCAB = 1000


def tiny_config(arch: str = "llama", **overrides):
    from transformers import LlamaConfig, Qwen2Config

    kw = dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, use_cache=False, attention_dropout=0.0,
    )
    kw.update(overrides)
    if arch == "llama":
        return LlamaConfig(**kw)
    if arch == "qwen2":
        kw.setdefault("tie_word_embeddings", True)
        return Qwen2Config(**kw)
    raise ValueError(arch)


def tiny_model(arch: str = "llama", kind: str = "causal", seed: int = 0, **overrides):
    """Random-init fp32 model (seeded). kind: causal | reward (AutoModelForSequenceClassification, 1 label)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cfg = tiny_config(arch, **overrides)
    torch.manual_seed(seed)
    if kind == "causal":
        m = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    else:
        cfg.num_labels = 1
        cfg.pad_token_id = 0
        m = AutoModelForSequenceClassification.from_config(cfg, attn_implementation="sdpa")
    return m.float()


def naive_branch_logprobs(model, prompt, branches):
    """Each branch on its own copy of the prompt, plain model forward (sdpa): summed log-probs [N]."""
    out = []
    for br in branches:
        ids = torch.tensor([list(prompt) + list(br)])
        logits = model(input_ids=ids, use_cache=False).logits[0].float()
        start = max(len(prompt) - 1, 0)
        lp = F.log_softmax(logits[start : ids.shape[1] - 1], -1)
        tgt = ids[0, start + 1 :]
        out.append(lp.gather(1, tgt[:, None]).sum())
    return torch.stack(out)


def naive_branch_rewards(model, prompt, branches):
    out = []
    for br in branches:
        ids = torch.tensor([list(prompt) + list(br)])
        h = model.base_model(input_ids=ids, use_cache=False).last_hidden_state
        out.append(model.score(h[0, -1]).float()[0])
    return torch.stack(out)


def grads(model):
    return {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def max_rel(a: dict, b: dict) -> tuple[float, str]:
    """max over parameters of max|a-b| / max|b| (per-tensor scale)."""
    worst, name = 0.0, ""
    for n in b:
        scale = b[n].abs().max().item()
        err = (a[n] - b[n]).abs().max().item() / max(scale, 1e-12)
        if err > worst:
            worst, name = err, n
    return worst, name


def rand_ids(gen, n):
    return torch.randint(3, VOCAB, (n,), generator=gen).tolist()


def logo_loss(logp, counts, branch_example, branch_rank, beta=2.5, gamma=0.5, lam=0.05):
    """LOGO (REFERENCE §1.5), averaged over examples, from per-branch summed log-probs."""
    mean = logp / counts.clamp(min=1)
    losses = []
    for e in branch_example.unique():
        m = mean[branch_example == e]
        r = branch_rank[branch_example == e]
        chosen, rejects = m[r == 0][0], m[r > 0]
        delta = chosen - rejects.mean()
        losses.append(-F.logsigmoid(beta * delta - gamma) + lam * (-chosen))
    return torch.stack(losses).mean()
