"""Tokenization: chat-template application, token-length accounting, and the over-long-input policy.

The over-long policy follows Long-RewardBench (REFERENCE §1.8): a prompt at or over the limit keeps its first
``head`` tokens and its last ``max_len - head`` tokens (the benchmark: 131,072 → 65,536 + 65,531).
:class:`Truncator` applies the configured policy (``head_tail`` | ``error`` | ``skip``) and counts what it cut.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Sequence

__all__ = ["encode_prompt", "encode_completion", "encode_scored", "keep_head_tail", "pad_batch", "Truncator", "TooLong"]


def encode_prompt(tokenizer, messages: Sequence[dict]) -> list[int]:
    """Token ids of ``messages`` through the tokenizer's chat template, ending with the assistant turn opener."""
    out = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def encode_completion(tokenizer, text: str, add_eos: bool = True) -> list[int]:
    """Token ids of an assistant completion (a judgement): no special tokens added, EOS appended."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    return ids


def encode_scored(tokenizer, messages: Sequence[dict]) -> list[int]:
    """Token ids a discriminative RM scores for ``[*prompt, assistant]``, exactly as the DisRM trained on them.

    ``encode_prompt(prompt) + encode_completion(answer)``: the sequence ends at the completion's EOS, where
    training read the reward (``branch_rewards``).  A chat template applied to the whole conversation ends one
    token later (ChatML adds a newline after ``<|im_end|>``), and a reward read there comes from an untrained
    position.
    """
    messages = list(messages)
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("encode_scored needs a conversation ending with the assistant's answer")
    return encode_prompt(tokenizer, messages[:-1]) + encode_completion(tokenizer, messages[-1]["content"])


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, left: bool = False):
    """Token id lists -> ``(input_ids [B, W] long, attention_mask [B, W] long)``, W = the longest length.

    ``left=True`` pads on the left (batched generation: every prompt ends at column W-1); otherwise on the right
    (scoring: row r's last real token is at ``len(seqs[r]) - 1``).
    """
    import torch

    width = max((len(x) for x in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, x in enumerate(seqs):
        cols = slice(width - len(x), width) if left else slice(0, len(x))
        ids[r, cols] = torch.tensor(list(x), dtype=torch.long)
        mask[r, cols] = 1
    return ids, mask


def keep_head_tail(ids: Sequence[int], max_len: int, head: int | None = None) -> list[int]:
    """Keep the first ``head`` and the last ``max_len - head`` ids when ``len(ids) > max_len``.

    ``head`` defaults to ``max_len // 2``.  Shorter inputs come back unchanged.
    """
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    if len(ids) <= max_len:
        return list(ids)
    head = max_len // 2 if head is None else head
    if not 0 <= head <= max_len:
        raise ValueError(f"head must be within [0, {max_len}], got {head}")
    tail = max_len - head
    return list(ids[:head]) + (list(ids[-tail:]) if tail else [])


class TooLong(ValueError):
    """An input over the limit under the ``error`` policy."""


@dataclass
class Truncator:
    """Applies the over-long policy to prompts and counts what happened.

    ``fit(prompt_ids, reserve)`` returns the prompt cut so that ``len(prompt) + reserve <= max_len`` (keeping head
    and tail), or ``None`` when the row should be skipped, or raises :class:`TooLong` under ``error``.
    """

    max_len: int
    policy: Literal["head_tail", "error", "skip"] = "head_tail"
    head_fraction: float = 0.5
    counts: Counter = field(default_factory=Counter)

    def fit(self, prompt_ids: Sequence[int], reserve: int = 0, where: str = "") -> list[int] | None:
        budget = self.max_len - reserve
        if len(prompt_ids) <= budget:
            return list(prompt_ids)
        if budget <= 0 or self.policy == "error":
            raise TooLong(f"{where}: {len(prompt_ids)} prompt tokens + {reserve} completion tokens exceed "
                          f"max_length {self.max_len}" + (" (no room left for the prompt)" if budget <= 0 else ""))
        if self.policy == "skip":
            self.counts["skipped_too_long"] += 1
            return None
        self.counts["truncated_head_tail"] += 1
        return keep_head_tail(prompt_ids, budget, head=int(budget * self.head_fraction))
