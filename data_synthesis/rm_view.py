"""Response preferences for the discriminative RM, derived from the voted pointwise judgements.

The judge-training rows (``prompt`` = judge prompt, ``chosen``/``rejected`` = judgements) train a generative judge;
a DisRM (REFERENCE §1.6) instead scores *responses* given the long prompt.  For every source example whose
pointwise tasks survived voting, the responses are ranked by their voted score: ``chosen`` = the single best,
``rejected`` = every response voted strictly lower (highest first).  The prompt is the benchmark-shaped one
(:func:`data_synthesis.heldout.benchmark_prompt`: the example's expanded context, tags removed, then the question),
so the DisRM trains on exactly the input it is evaluated on.  Examples without a unique best or without a worse
response give no row.
"""
from __future__ import annotations

import re
from itertools import groupby
from typing import Iterable

from longrm.records import PreferenceRecord

from .heldout import benchmark_prompt

__all__ = ["response_preferences"]

_CTX = re.compile(r"<context>\n(.*)\n</context>", re.S)


def _context(rec: PreferenceRecord) -> str | None:
    m = _CTX.search(rec.prompt[-1]["content"])
    if not m:
        return None
    ctx, tag = m.group(1), rec.metadata.get("tag")
    return ctx.replace(f"<{tag}>", "").replace(f"</{tag}>", "") if tag else ctx


def response_preferences(records: Iterable[PreferenceRecord]) -> Iterable[PreferenceRecord]:
    """One response-preference record per source example (records of one example must be consecutive, as the
    synthesis parts write them)."""
    for source_id, group in groupby(records, key=lambda r: r.metadata.get("source_id")):
        point = [r for r in group if r.metadata.get("task") == "pointwise" and r.responses]
        if source_id is None or len(point) < 2:
            continue
        ctx = _context(point[0])
        if ctx is None:
            continue
        scored = sorted(((int(r.metadata["chosen_score"]), r.responses[0]) for r in point), key=lambda x: -x[0])
        best, rest = scored[0], [x for x in scored[1:] if x[0] < scored[0][0]]
        if scored[1][0] == best[0] or not rest:
            continue
        meta = {k: point[0].metadata.get(k) for k in ("length_bucket", "hop", "prompt_tokens")}
        meta.update(source_id=source_id, scores=[s for s, _ in [best] + rest], task="response_preference")
        yield PreferenceRecord(prompt=benchmark_prompt(ctx, point[0].question), chosen=best[1],
                               rejected=[r for _, r in rest], id=f"{source_id}:rm", question=point[0].question,
                               responses=[best[1]] + [r for _, r in rest], reference=point[0].reference,
                               metadata=meta)
