"""Held-out evaluation rows in the Long-RewardBench shape (REFERENCE §1.8), built next to the training data.

The rows come from synthetic examples that training never sees: another seed (so other entities, questions,
inserted facts and distractor documents) and, if asked, other task families (``heldout.families``; a test checks
that a held-out family is absent from the training source).  Each example is expanded to a length bucket like
the training prompts, but untagged, as a benchmark prompt is: ``prompt_template`` is one user message holding
the long context and then the question.

- ``PairWise`` rows: the correct response (chosen) against one of the others (rejected), the kind of the
  rejected one cycling over partial / hallucinated / off-topic;
- ``BestOfN`` rows (``heldout.best_of_n_fraction``): 3 or 4 candidates in gold order (the kinds' grade ranges are
  ordered: correct > partial > hallucinated > off-topic).

``source`` is ``LongQA`` (a long-document QA judgement) and ``subtask`` the family, so the eval's per-task and
per-length tables apply as they are.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from longrm.config import atomic_write_text
from longrm.records import LENGTH_BUCKETS

from .synthetic import generate_task

__all__ = ["heldout_examples", "heldout_rows", "write_heldout", "benchmark_prompt"]

_KIND_ORDER = ("correct", "partial", "hallucinated", "offtopic")


def benchmark_prompt(context: str, question: str) -> list[dict]:
    """The benchmark-shaped prompt: one user message, the long context then the question."""
    return [{"role": "user", "content": f"{context}\n\n{question}"}]


def heldout_examples(cfg):
    """The held-out synthetic tasks of ``cfg.heldout`` (defaults taken from the training source).

    A candidate whose inserted fact (its gold evidence) also occurs in a training example is skipped, so no
    held-out row can be answered from memory of a training row (templated questions may repeat)."""
    h, src = cfg.heldout, cfg.source.synthetic
    families = tuple(h.families or src.families)
    near = src.near_miss_facts if h.near_miss_facts is None else h.near_miss_facts
    seen = {generate_task(i, seed=src.seed, hops=tuple(src.hops), responses_per_task=src.responses_per_example,
                          families=tuple(src.families), near_miss_facts=src.near_miss_facts).meta["evidence"]
            for i in range(src.num_examples)}
    out, i = [], 0
    while len(out) < h.num_examples:
        t = generate_task(i, seed=h.seed, hops=tuple(src.hops), responses_per_task=4, families=families,
                          near_miss_facts=near, id_prefix="heldout")
        i += 1
        if t.meta["evidence"] not in seen:
            out.append(t)
    return out


def heldout_rows(cfg, tokenizer, expander) -> list[dict]:
    """Long-RewardBench rows of the held-out examples, expanded with ``expander`` (untagged) to the buckets."""
    from .tasks import prompt_counter

    h = cfg.heldout
    count = prompt_counter(tokenizer)
    buckets = list(h.buckets or cfg.expand.buckets)
    rows = []
    for i, t in enumerate(heldout_examples(cfg)):
        rng = random.Random(f"heldout:{h.seed}:{i}")
        bucket = buckets[i % len(buckets)]
        target = LENGTH_BUCKETS[bucket] - cfg.expand.reserve_tokens
        overhead = count(benchmark_prompt("x", t.question)) - 1
        exp = expander.expand(t.context, target - overhead, rng, tagged=False)
        prompt = benchmark_prompt(exp.context, t.question)
        by_kind = {k: t.responses[t.kinds.index(k)] for k in _KIND_ORDER if k in t.kinds}
        base = {"prompt_template": prompt, "source": "LongQA", "subtask": t.meta["family"], "question": t.question,
                "ctx_length_for_length": bucket, "reference": t.reference, "insert_frac": round(exp.insert_frac, 4),
                "prompt_tokens": overhead + exp.context_tokens}
        if rng.random() < h.best_of_n_fraction:
            n = 3 + (i % 2)
            cands = [by_kind[k] for k in _KIND_ORDER if k in by_kind][:n]
            rows.append({**base, "id": f"{t.id}:bon", "tasktype": "BestOfN", "subtype": str(len(cands)),
                         "candidates": cands})
        else:
            worse = _KIND_ORDER[1 + i % 3]
            rows.append({**base, "id": f"{t.id}:pair", "tasktype": "PairWise", "rejected_kind": worse,
                         "subtype": "same" if worse == "partial" else "diff",
                         "chosen": by_kind["correct"], "rejected": by_kind[worse]})
    return rows


def write_heldout(cfg, tokenizer, expander) -> Path:
    """Write the held-out rows as jsonl (temp name, then rename); returns the path."""
    path = Path(cfg.heldout.path) if cfg.heldout.path else Path(cfg.output.dir) / "heldout.jsonl"
    rows = heldout_rows(cfg, tokenizer, expander)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path
