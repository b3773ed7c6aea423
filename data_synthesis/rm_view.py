"""Response preferences for the discriminative RM, derived from the voted pointwise judgements.

The judge-training rows (``prompt`` = judge prompt, ``chosen``/``rejected`` = judgements) train a generative judge;
a DisRM (REFERENCE §1.6) instead scores *responses* given the long prompt.  For every source example whose
pointwise tasks survived voting, the responses are ranked by their voted score: ``chosen`` = the single best,
``rejected`` = every response voted strictly lower (highest first).  The prompt is the benchmark-shaped one
(:func:`data_synthesis.heldout.benchmark_prompt`: the example's expanded context, tags removed, then the question),
so the DisRM trains on exactly the input it is evaluated on.  Examples without a unique best or without a worse
response give no row.

:func:`judgement_contrasts` writes cross-response rows for LOGO (REFERENCE §1.5 with rejects taken across
responses): each voted judgement is the chosen one under its own response and the reject under every response
voted differently, in one shared context.  A within-response reject differs from the chosen judgement by the
score the judges disagreed on; a cross-response reject differs in the response, so LOGO's margin is on the check
itself (docs/reward_quality.md, seventh round).
"""
from __future__ import annotations

import re
from itertools import groupby
from typing import Iterable

from longrm.judging.prompts import response_block
from longrm.records import PreferenceRecord

from .heldout import benchmark_prompt

__all__ = ["response_preferences", "judgement_contrasts"]

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


def _with_response(prompt: list[dict], shown: str, response: str) -> list[dict]:
    """``prompt`` (a pointwise judge prompt ending with ``shown``'s ``<response>`` block) with ``response`` instead."""
    user, old = prompt[-1]["content"], response_block(shown)
    if not user.endswith(old):
        raise ValueError("a pointwise judge prompt that does not end with its response's <response> block")
    return [*prompt[:-1], {**prompt[-1], "content": user[:-len(old)] + response_block(response)}]


def judgement_contrasts(records: Iterable[PreferenceRecord]) -> Iterable[PreferenceRecord]:
    """Cross-response judgement preferences: per source example and per voted response ``a``, one record whose
    ``chosen`` is ``a``'s voted judgement with ``a`` in the judge prompt, and whose rejects are that same judgement with
    each response voted differently in its place (largest score gap first; ``rejected_prompts``; a response with
    ``a``'s very text is no contrast and is left out).  Every prompt is the example's first pointwise row's prompt
    (its expanded context, tag and length; the metadata describes it) with only the ``<response>`` block changed, so
    ``a``'s judgement is placed under that context rather than the one it was voted on (records of one example must
    be consecutive, as the synthesis parts write them)."""
    for source_id, group in groupby(records, key=lambda r: r.metadata.get("source_id")):
        point = [r for r in group if r.metadata.get("task") == "pointwise" and r.responses]
        if source_id is None or len(point) < 2:
            continue
        base, shown = point[0].prompt, point[0].responses[0]
        for a in point:
            sa = int(a.metadata["chosen_score"])
            others = sorted((b for b in point if int(b.metadata["chosen_score"]) != sa
                             and b.responses[0] != a.responses[0]),
                            key=lambda b: -abs(int(b.metadata["chosen_score"]) - sa))
            if not others:
                continue
            meta = {k: point[0].metadata.get(k) for k in ("length_bucket", "hop", "prompt_tokens")}
            meta.update(source_id=source_id, task="judgement_contrast",
                        scores=[sa] + [int(b.metadata["chosen_score"]) for b in others])
            yield PreferenceRecord(prompt=_with_response(base, shown, a.responses[0]), chosen=a.chosen,
                                   rejected=[a.chosen] * len(others), id=f"{a.id}:contrast",
                                   question=a.question, responses=[a.responses[0]] + [b.responses[0] for b in others],
                                   reference=a.reference, metadata=meta,
                                   rejected_prompts=[_with_response(base, shown, b.responses[0]) for b in others])
