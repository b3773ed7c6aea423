"""Supervised warm start of a tiny policy on built-in arithmetic prompts (CPU experiments and tests).

A random-init tiny policy never answers a prompt right, so a verifier's reward would be 0 for every rollout and GRPO
would have nothing to learn from.  A short masked cross-entropy loop on ``prompt → answer + end of turn`` makes its
sampled answers right part of the time, so rewards vary inside prompt groups (REFERENCE §2's co-training needs
groups with both right and wrong rollouts).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["warm_start_policy"]


def warm_start_policy(model_dir: str | Path, out: str | Path, spec: str = "arithmetic:n=25,seed=0,max=4,ops=+",
                      steps: int = 100, seed: int = 0, lr: float = 3e-3) -> Path:
    """Train ``model_dir``'s causal LM for ``steps`` full-batch AdamW steps on ``spec``'s answers (chat template,
    loss on the answer and ``<|im_end|>`` only) and save it with its tokenizer to ``out``; an existing ``out`` is
    reused."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .prompts import load_prompt_rows

    out = Path(out)
    if (out / "config.json").exists():
        return out
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    seqs, masks = [], []
    for r in load_prompt_rows(spec):
        p = tok.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True)
        p = list(p["input_ids"] if hasattr(p, "keys") else p)
        a = tok(r["answer"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        seqs.append(p + a)
        masks.append([0] * len(p) + [1] * len(a))
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    lab = torch.full((len(seqs), width), -100)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, masks)):
        ids[i, :len(s)] = torch.tensor(s)
        att[i, :len(s)] = 1
        lab[i, :len(s)] = torch.where(torch.tensor(m, dtype=torch.bool), torch.tensor(s), torch.tensor(-100))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out
