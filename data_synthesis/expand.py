"""Short-to-long expansion (REFERENCE §1.2 step 3, §1.1 tag convention).

The critical short context is wrapped in a random 2–4 letter tag (``<RUOA>…</RUOA>``) and inserted among
distractor documents until the judge prompt reaches a target token length counted with the judge's tokenizer.

Speed matters (goal: ≥1,000 32K-token examples/min on 2 cores), so nothing long is re-tokenized:

- :class:`DistractorPool` tokenizes every distractor document **once**, as the piece ``sep + doc`` it will be
  joined with, and keeps only each piece's text and token count (long documents are cut into chunks of at most
  ``max_doc_tokens``);
- :meth:`Expander.expand` picks documents by summing the cached counts, fills the last few tokens with a prefix
  of one more document (that document alone is re-encoded), and inserts the tagged block at a document
  boundary chosen from the position distribution.  The token count it returns is the sum of piece counts —
  exact for tokenizers whose pre-tokenizer splits at ``\\n`` (GPT-2/Qwen/Llama-3 style byte-level BPE) and
  within a few tokens otherwise; callers that need the exact figure re-count the final prompt once
  (``expand.count: exact``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

from longrm.judging.prompts import random_tag, tag_text

__all__ = ["Expansion", "ExpansionTooLong", "DistractorPool", "Expander", "fast_encoder"]


class ExpansionTooLong(ValueError):
    """The critical block plus the fixed prompt parts already exceed the target length."""


@dataclass
class Expansion:
    context: str            # distractors + the tagged critical block, joined with ``sep``
    tag: str                # the random tag (without brackets)
    block: str              # ``<TAG>critical</TAG>`` exactly as inserted
    insert_index: int       # number of distractor documents before the block
    insert_char: int        # character offset of the block in ``context``
    insert_token: int       # tokens of ``context`` before the block (piece-count estimate)
    context_tokens: int     # tokens of ``context`` (piece-count estimate)
    num_docs: int           # distractor documents (the partial filler included)
    doc_ids: list[int]      # pool indices of the documents used, in order (filler last if any)

    @property
    def insert_frac(self) -> float:
        return self.insert_token / max(1, self.context_tokens)


def fast_encoder(tokenizer) -> Callable[[list[str]], list[list[int]]]:
    """A batch encoder without special tokens: the Rust backend when there is one (much faster)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "encode_batch"):
        def enc(texts: list[str]) -> list[list[int]]:
            return [e.ids for e in backend.encode_batch(list(texts), add_special_tokens=False)]
        return enc

    def enc_slow(texts: list[str]) -> list[list[int]]:
        return [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    return enc_slow


class DistractorPool:
    """Distractor documents tokenized once: piece texts (``sep + doc``) and their token counts.

    ``owners[i]`` (optional) names the source example a document came from, so an example never gets its own
    context back as a distractor.
    """

    def __init__(self, docs: Sequence[str], tokenizer, *, sep: str = "\n\n", max_doc_tokens: int = 1024,
                 owners: Sequence[str | None] | None = None, batch_size: int = 256):
        self.tokenizer, self.sep = tokenizer, sep
        self.encode = fast_encoder(tokenizer)
        self.pieces: list[str] = []
        self.lens: list[int] = []
        self.owners: list[str | None] = []
        cleaned = [(d.strip(), (owners[i] if owners is not None else None)) for i, d in enumerate(docs)]
        cleaned = [(d, o) for d, o in cleaned if d]
        for start in range(0, len(cleaned), batch_size):
            chunk = cleaned[start:start + batch_size]
            ids_list = self.encode([sep + d for d, _ in chunk])
            long_texts: list[tuple[str, str | None]] = []
            for (doc, owner), ids in zip(chunk, ids_list):
                if len(ids) <= max_doc_tokens:
                    self.pieces.append(sep + doc)
                    self.lens.append(len(ids))
                    self.owners.append(owner)
                else:  # cut at token boundaries; chunk texts are re-encoded below for exact counts
                    body = self.encode([doc])[0]
                    for j in range(0, len(body), max_doc_tokens - 8):
                        text = tokenizer.decode(body[j:j + max_doc_tokens - 8]).strip()
                        if text:
                            long_texts.append((text, owner))
            if long_texts:
                for (text, owner), ids in zip(long_texts, self.encode([sep + t for t, _ in long_texts])):
                    self.pieces.append(sep + text)
                    self.lens.append(len(ids))
                    self.owners.append(owner)
        if not self.pieces:
            raise ValueError("the distractor pool is empty: give documents (a corpus, other samples or synthetic)")
        self.total_tokens = sum(self.lens)

    def __len__(self) -> int:
        return len(self.pieces)


class Expander:
    """Assemble long contexts from a :class:`DistractorPool` (see the module docstring).

    ``position_range`` is the interval the critical block's relative position (fraction of context tokens
    before it) is drawn from uniformly — the official data shows 4%–90% (§1.2); ``position_choices`` instead
    draws from a fixed list (e.g. ``[0, 0.5, 1]`` for a controlled position sweep).
    """

    def __init__(self, pool: DistractorPool, *, position_range: tuple[float, float] = (0.04, 0.9),
                 position_choices: Sequence[float] | None = None, tag_len: tuple[int, int] = (2, 4),
                 min_filler_tokens: int = 4):
        lo, hi = position_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"position_range must satisfy 0 <= lo <= hi <= 1, got {position_range}")
        self.pool = pool
        self.sep = pool.sep
        self.position_range = (lo, hi)
        self.position_choices = list(position_choices) if position_choices else None
        self.tag_len = tag_len
        self.min_filler_tokens = min_filler_tokens
        self.encode = pool.encode
        # tokens the separator adds in front of a word (subtracted when a piece ends up first in the context)
        a, b = self.encode([self.sep + "Word", "Word"])
        self.sep_tokens = max(0, len(a) - len(b))

    def count(self, text: str) -> int:
        return len(self.encode([text])[0])

    def _draw_frac(self, rng: random.Random) -> float:
        if self.position_choices:
            return float(rng.choice(self.position_choices))
        return rng.uniform(*self.position_range)

    def _pick_docs(self, need: int, rng: random.Random, exclude_owner: str | None) -> tuple[list[int], int]:
        pool, n = self.pool, len(self.pool)
        chosen: list[int] = []
        seen: set[int] = set()
        total, misses = 0, 0
        while True:
            j = rng.randrange(n)
            if j in seen or (exclude_owner is not None and pool.owners[j] == exclude_owner):
                misses += 1
                if misses > 4 * n + 64:  # pool exhausted: allow repeats
                    seen.clear()
                    misses = 0
                continue
            if total + pool.lens[j] > need:
                return chosen, j
            seen.add(j)
            chosen.append(j)
            total += pool.lens[j]

    def expand(self, critical: str, budget_tokens: int, rng: random.Random, *,
               exclude_owner: str | None = None, tag: str | None = None, tagged: bool = True) -> Expansion:
        """A context of about ``budget_tokens`` tokens holding ``critical`` at a random position, wrapped in
        ``<tag>…</tag>`` (a random tag unless given) or, with ``tagged=False``, as it is (``tag`` is then "")."""
        tag = (tag or random_tag(rng, *self.tag_len)) if tagged else ""
        block = tag_text(critical, tag) if tagged else critical
        block_len = self.count(self.sep + block)
        need = budget_tokens - block_len + self.sep_tokens  # the first piece loses its separator
        if need < 0:
            raise ExpansionTooLong(f"critical block is {block_len - self.sep_tokens} tokens, budget {budget_tokens}")
        chosen, nxt = self._pick_docs(need, rng, exclude_owner) if need > 0 else ([], -1)
        pool = self.pool
        pieces = [pool.pieces[j] for j in chosen]
        lens = [pool.lens[j] for j in chosen]
        rest = need - sum(lens)
        doc_ids = list(chosen)
        if rest >= self.min_filler_tokens and nxt >= 0:  # fill the remainder with a prefix of one more doc
            ids = self.encode([pool.pieces[nxt]])[0][:rest]
            text = self.pool.tokenizer.decode(ids)
            if text.strip():
                filler = text if text.startswith(self.sep) else self.sep + text.lstrip()
                pieces.append(filler.rstrip())
                lens.append(len(ids))
                doc_ids.append(nxt)
        # insert the block at the document boundary closest to the drawn fraction of tokens
        frac = self._draw_frac(rng)
        total_docs = sum(lens)
        target_before = frac * (total_docs + block_len)
        best_k, best_gap, acc = 0, abs(target_before), 0
        for k, ln in enumerate(lens, start=1):
            acc += ln
            gap = abs(acc - target_before)
            if gap < best_gap:
                best_k, best_gap = k, gap
            elif acc > target_before:
                break
        pieces.insert(best_k, self.sep + block)
        context = "".join(pieces)[len(self.sep):]
        insert_char = sum(len(p) for p in pieces[:best_k])  # every piece starts with sep; context drops the first
        insert_token = sum(lens[:best_k])  # first piece loses its sep, the block's own sep comes before it
        context_tokens = total_docs + block_len - self.sep_tokens
        return Expansion(context=context, tag=tag, block=block, insert_index=best_k, insert_char=insert_char,
                         insert_token=insert_token, context_tokens=context_tokens, num_docs=len(lens),
                         doc_ids=doc_ids)
