"""Records -> tokenized shared-context examples for the training stages (and the collate that packs them).

- Preference records (ours or the official ``chat_template`` + ``chosen`` + ``rejects``, REFERENCE §1.9):
  the prompt goes through the chat template; the chosen judgement and the first ``num_rejects`` rejected
  ones become branches of one shared-context example (``[context | j_0 … j_V]``, see
  :mod:`longrm.data.layout`), each a completion ending in EOS.
  A record with ``rejected_prompts`` (cross-response rejects: the judgement under another response's prompt)
  shares only the prompts' common token prefix; each branch continues it with its own prompt suffix. Over-long
  rows cut the shared part only (head + tail), so each branch still ends with its own full suffix.
- SFT records (ours or the official ``chat_template`` + ``golden``): the same layout with one branch, so the
  loss falls on the judgement tokens only (REFERENCE §1.4).

Over-long prompts follow ``data.truncation`` (head + tail by default) with room kept for every branch.
``data.path`` / ``data.eval_path`` may also be a built-in synthetic spec (:mod:`longrm.data.synthetic`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..config import DataConfig
from .layout import Example, LayoutBatch, pack, shared_context_example
from .tokenize import Truncator, encode_completion, encode_prompt

__all__ = ["TokenizedSet", "load_records", "tokenize_preference", "tokenize_sft", "split_shared_prefix", "Collator"]


@dataclass
class TokenizedSet:
    examples: list[Example]
    ids: list[str]
    skipped: Counter

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def load_records(data: DataConfig, kind: str, eval_split: bool = False):
    """Records of ``data.path`` (or ``data.eval_path`` when ``eval_split``); ``kind`` is preference | sft."""
    from ..records import load_preference_records, load_sft_records

    path = data.eval_path if eval_split else data.path
    if not path:
        return None if eval_split else []
    split = data.eval_split if eval_split else data.split
    if path.startswith("synthetic:"):
        from .synthetic import records_from_spec

        recs = records_from_spec(path, kind)
        return recs[: data.limit] if data.limit and not eval_split else recs
    loader = load_preference_records if kind == "preference" else load_sft_records
    loaded = loader(path, split=split, on_bad_record=data.on_bad_record, limit=None if eval_split else data.limit)
    return loaded.records


def tokenize_preference(records, tokenizer, data: DataConfig, num_rejects: int) -> TokenizedSet:
    trunc = Truncator(data.max_length, data.truncation)
    out, ids, skipped = [], [], Counter()
    for rec in records:
        rejects = list(rec.rejected)[:num_rejects]
        if not rejects:
            skipped["no_rejects"] += 1
            continue
        branches = [encode_completion(tokenizer, rec.chosen)] + [encode_completion(tokenizer, r) for r in rejects]
        full = encode_prompt(tokenizer, rec.prompt)
        prefixes = None
        if rec.rejected_prompts is not None and any(m is not None for m in rec.rejected_prompts[:len(rejects)]):
            own = [full] + [full if m is None else encode_prompt(tokenizer, m)
                            for m in rec.rejected_prompts[:len(rejects)]]
            try:
                full, prefixes = split_shared_prefix(own)
            except ValueError as e:
                if data.on_bad_record == "skip":
                    skipped["no_shared_prompt"] += 1
                    continue
                raise ValueError(f"{data.path}: record {rec.id}: field 'rejected_prompts': {e}") from None
        reserve = sum(len(b) + 1 for b in branches) + sum(len(x) for x in prefixes or [])
        if prefixes is not None and reserve >= data.max_length and data.truncation != "error":
            skipped["branches_too_long"] += 1  # the branches' own prompt suffixes alone fill max_length
            continue
        prompt = trunc.fit(full, reserve, where=rec.id)
        if prompt is None:
            continue
        out.append(shared_context_example(prompt, branches, prefixes))
        ids.append(rec.id)
    skipped.update(trunc.counts)
    return TokenizedSet(out, ids, skipped)


def split_shared_prefix(prompts: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """``(shared, suffixes)``: the longest common prefix of the token lists and what each one adds to it."""
    n = min(len(p) for p in prompts)
    k = 0
    while k < n and all(p[k] == prompts[0][k] for p in prompts):
        k += 1
    if k == 0:
        raise ValueError("the branch prompts share no leading token")
    return list(prompts[0][:k]), [list(p[k:]) for p in prompts]


def tokenize_sft(records, tokenizer, data: DataConfig) -> TokenizedSet:
    trunc = Truncator(data.max_length, data.truncation)
    out, ids = [], []
    for rec in records:
        target = encode_completion(tokenizer, rec.target)
        prompt = trunc.fit(encode_prompt(tokenizer, rec.prompt), len(target) + 1, where=rec.id)
        if prompt is None:
            continue
        out.append(shared_context_example(prompt, [target]))
        ids.append(rec.id)
    return TokenizedSet(out, ids, Counter(trunc.counts))


@dataclass
class Collator:
    """Packs a micro-batch of examples into one row (padded to a multiple of ``pad_to_multiple_of``)."""

    pad_id: int = 0
    pad_to_multiple_of: int = 1

    def __call__(self, examples: list[Example]) -> LayoutBatch:
        return pack(examples, pad_to_multiple_of=self.pad_to_multiple_of, pad_id=self.pad_id)
