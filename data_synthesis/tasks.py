"""Judge tasks from source examples: the training prompt (expanded), the judge requests, the voting input.

- pointwise (REFERENCE §1.1): one task per response; the judge answers ``[Analysis] … [Score: N]``;
- pairwise: one task per response pair; the judge sees both orders (A/B, then B/A) and a vote counts only when
  it prefers the same response in both (an order-inconsistent vote is a failed vote);
- the training prompt is always the expanded one (§1.2 step 3: the critical block tagged, at a random
  position, padded with distractors to the bucket length); the judges see the short critical context (paper
  default) or the same expanded prompt (``tasks.judge_context``); the golden answer is shown to the judges
  only (``tasks.show_reference``), never in the training prompt.
"""
from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from longrm.judging.parsers import parse_pairwise, parse_pointwise
from longrm.judging.prompts import pairwise_messages, pointwise_messages, random_tag
from longrm.records import LENGTH_BUCKETS, length_bucket

from .expand import Expander, ExpansionTooLong, fast_encoder
from .judges.base import Judgement, JudgeRequest
from .sources import SourceExample

__all__ = ["Task", "TaskBuilder", "prompt_counter", "task_votes"]

log = logging.getLogger(__name__)


@dataclass
class Task:
    id: str
    kind: str                          # "pointwise" | "pairwise"
    example: SourceExample
    response_idx: list[int]            # pointwise [i]; pairwise [a, b] as displayed (A = a, B = b)
    prompt: list[dict]                 # the training prompt
    requests: list[JudgeRequest]       # pointwise: 1; pairwise: 2 (A/B order, then B/A)
    meta: dict = field(default_factory=dict)


def prompt_counter(tokenizer) -> Callable[[list[dict]], int]:
    """Token count of a chat prompt as the trainer encodes it (chat template + generation prompt)."""
    try:
        from longrm.data.tokenize import encode_prompt
    except ImportError:  # pragma: no cover - until longrm.data.tokenize lands
        encode_prompt = None
    if encode_prompt is not None:
        return lambda messages: len(encode_prompt(tokenizer, messages))
    enc = fast_encoder(tokenizer)

    def count(messages: list[dict]) -> int:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(enc([text])[0])
    return count


def _with_reference(messages: list[dict], reference: str | None) -> list[dict]:
    if not reference:
        return messages
    out = [dict(m) for m in messages]
    out[-1]["content"] += (f"\n\n<reference>\n{reference}\n</reference>\n"
                           "(A reference answer, shown to you only to help you judge.)")
    return out


class TaskBuilder:
    """Builds the tasks of one example; every random choice is seeded by ``(seed, example id)``."""

    def __init__(self, cfg, tokenizer=None, expander: Expander | None = None):
        self.cfg, self.tokenizer, self.expander = cfg, tokenizer, expander
        self.count = prompt_counter(tokenizer) if tokenizer is not None else None
        ex = cfg.expand
        if ex.enabled and (tokenizer is None or expander is None):
            raise ValueError("expansion needs a tokenizer and an expander")
        self.built, self.force_exact = 0, False
        self.length_check = {"checked": 0, "abs_err_sum": 0, "over_tolerance": 0}
        self.buckets = list(ex.buckets)
        self.weights = list(ex.bucket_weights) if ex.bucket_weights else [1.0] * len(self.buckets)

    # -- prompts ------------------------------------------------------------------------------------------
    @staticmethod
    def _pointwise(context: str, ex: SourceExample, i: int, tag: str | None) -> list[dict]:
        return pointwise_messages(context, ex.question, ex.responses[i], tag=tag)

    @staticmethod
    def _pairwise(context: str, ex: SourceExample, a: int, b: int) -> list[dict]:
        return pairwise_messages(ex.question, ex.responses[a], ex.responses[b], context=context)

    def _expand(self, render: Callable[[str, str | None], list[dict]], ex: SourceExample, rng: random.Random,
                bucket: str) -> tuple[list[dict], dict]:
        """Expanded training prompt ``render(context, tag)`` of about the bucket's target length."""
        cfg = self.cfg.expand
        target = LENGTH_BUCKETS[bucket] - cfg.reserve_tokens
        f = cfg.tag_fraction
        tagged = f >= 1 or (f > 0 and rng.random() < f)  # no draw at the default 1.0: same stream as before
        tag = random_tag(rng, cfg.tag_min_len, cfg.tag_max_len) if tagged else None
        lo, hi = cfg.fill_range
        if (lo, hi) != (1.0, 1.0):  # a length spread inside the bucket (no draw at the default: same stream)
            target = max(1, round(target * rng.uniform(lo, hi)))
        # fixed prompt parts: the prompt around a one-token placeholder context, minus that token
        overhead = self.count(render("x", tag)) - 1
        budget = target - overhead
        state = rng.getstate()
        self.built += 1
        exact = cfg.count == "exact" or self.force_exact
        check = not exact and cfg.verify_every and self.built % cfg.verify_every == 1 % cfg.verify_every
        for attempt in range(2):
            rng.setstate(state)
            exp = self.expander.expand(ex.context, budget, rng, exclude_owner=ex.id, tag=tag, tagged=tagged)
            prompt = render(exp.context, tag)
            n = overhead + exp.context_tokens
            if check and attempt == 0:
                true_n = self.count(prompt)
                self.length_check["checked"] += 1
                self.length_check["abs_err_sum"] += abs(true_n - n)
                if abs(true_n - n) > cfg.tolerance * target:
                    self.length_check["over_tolerance"] += 1
                    self.force_exact = exact = True
                    log.warning("incremental token counts miss by %d tokens with this tokenizer: counting every "
                                "prompt exactly from now on", true_n - n)
            if exact:
                n = self.count(prompt)
            if abs(n - target) <= cfg.tolerance * target or not exact:
                break
            budget += target - n  # boundary effects of an unusual tokenizer: correct once
        user = prompt[-1]["content"]
        pos = user.index(exp.context) + exp.insert_char  # insert_char is recorded in the user message
        assert user[pos:pos + len(exp.block)] == exp.block, "critical block not at its recorded position"
        meta = {"length_bucket": length_bucket(n), "target_bucket": bucket, "target_tokens": target,
                "prompt_tokens": n, "prompt_ctx_length": n, "token_count": "exact" if exact else "incremental",
                "length_ok": abs(n - target) <= cfg.tolerance * target,
                "insert_index": exp.insert_index, "insert_char": pos, "insert_token": exp.insert_token,
                "insert_frac": round(exp.insert_frac, 4), "tag": tag, "num_docs": exp.num_docs}
        return prompt, meta

    def _short(self, render, ex) -> tuple[list[dict], dict]:
        prompt = render(ex.context, None)
        meta: dict = {"tag": None}
        if self.count is not None:
            n = self.count(prompt)
            meta.update(length_bucket=length_bucket(n), prompt_tokens=n, prompt_ctx_length=n)
        return prompt, meta

    # -- tasks --------------------------------------------------------------------------------------------
    def build(self, ex: SourceExample) -> tuple[list[Task], Counter]:
        """Tasks of ``ex`` and a counter of tasks dropped before judging (by reason)."""
        drops: Counter = Counter()
        cfg, tcfg = self.cfg, self.cfg.tasks
        rng = random.Random(f"{cfg.run.seed}:{ex.id}")
        n_resp = len(ex.responses)
        if n_resp == 0:
            drops["no_responses"] += 1
            return [], drops
        pairwise = n_resp >= 2 and rng.random() < tcfg.pairwise_fraction
        bucket = rng.choices(self.buckets, weights=self.weights)[0] if cfg.expand.enabled else None
        sf = cfg.expand.short_fraction
        if bucket and sf > 0 and rng.random() < sf:  # kept short, as the paper's Stage I mixes short RM data in
            bucket = None
        specs: list[tuple[str, list[int]]] = []
        if pairwise:
            pairs = [(i, j) for i in range(n_resp) for j in range(i + 1, n_resp)]
            if ex.grades:
                distinct = [p for p in pairs if ex.grades[p[0]] != ex.grades[p[1]]]
                pairs = distinct or pairs
            rng.shuffle(pairs)
            for i, j in pairs[:tcfg.pairs_per_example]:
                specs.append(("pairwise", [i, j] if rng.random() < 0.5 else [j, i]))
        else:
            idx = list(range(n_resp))
            if tcfg.max_pointwise_per_example and n_resp > tcfg.max_pointwise_per_example:
                idx = sorted(rng.sample(idx, tcfg.max_pointwise_per_example))
            specs = [("pointwise", [i]) for i in idx]
        tasks = []
        for kind, ridx in specs:
            tid = f"{ex.id}:{kind[:5]}:{'-'.join(map(str, ridx))}"
            if kind == "pointwise":
                def render(ctx, tag, _i=ridx[0]):
                    return self._pointwise(ctx, ex, _i, tag)
            else:
                def render(ctx, tag, _a=ridx[0], _b=ridx[1]):
                    return self._pairwise(ctx, ex, _a, _b)
            try:
                prompt, meta = self._expand(render, ex, rng, bucket) if bucket else self._short(render, ex)
            except ExpansionTooLong:
                drops["too_long"] += 1
                continue
            if bucket and not meta["length_ok"]:
                drops["length_miss"] += 1
                continue
            tasks.append(Task(tid, kind, ex, ridx, prompt, self._requests(kind, ridx, ex, prompt, tid), meta))
        return tasks, drops

    def _requests(self, kind: str, ridx: list[int], ex: SourceExample, prompt: list[dict], tid: str):
        tcfg = self.cfg.tasks
        ref = ex.reference if tcfg.show_reference else None
        g = ex.grades
        evidence, claims = ex.meta.get("evidence"), ex.meta.get("claims")
        extra = {"evidence": evidence, "claims": claims, "reference": ex.reference} if evidence and claims else {}
        if kind == "pointwise":
            msgs = self._pointwise(ex.context, ex, ridx[0], None) if tcfg.judge_context == "short" else prompt
            hint = {"kind": "pointwise", "grade": g[ridx[0]], **_pick(extra, ridx)} if g else {}
            return [JudgeRequest(_with_reference(msgs, ref), hint, tid)]
        a, b = ridx
        if tcfg.judge_context == "short":
            ab, ba = self._pairwise(ex.context, ex, a, b), self._pairwise(ex.context, ex, b, a)
        else:
            ab = prompt
            user = prompt[-1]["content"]
            ctx = user[user.index("[Context]\n") + len("[Context]\n"):user.index("\n[End of Context]")]
            ba = self._pairwise(ctx, ex, b, a)
        return [JudgeRequest(_with_reference(ab, ref),
                             {"kind": "pairwise", "grades": [g[a], g[b]], **_pick(extra, [a, b])} if g else {},
                             tid + ":AB"),
                JudgeRequest(_with_reference(ba, ref),
                             {"kind": "pairwise", "grades": [g[b], g[a]], **_pick(extra, [b, a])} if g else {},
                             tid + ":BA")]


def _pick(extra: dict, ridx: list[int]) -> dict:
    """The oracle's view of the gold evidence and of what the shown responses claim (synthetic sources)."""
    if not extra:
        return {}
    out = {"evidence": extra["evidence"], "claims": [extra["claims"][i] for i in ridx]}
    if extra.get("reference"):
        out["reference"] = extra["reference"]
    return out


def task_votes(task: Task, judgements: list[list[Judgement]], lo: int = 0, hi: int = 10
               ) -> tuple[list[int], list[str | None], list[str | None]]:
    """Per-vote value (−1 on failure), failure kind, and the judgement text matching the training prompt.

    ``judgements[r][v]`` is vote ``v`` on request ``r`` of the task.  Pairwise values are ``0`` (the response
    shown as A in the training prompt is better) or ``1``.
    """
    k = len(judgements[0])
    values, fails, texts = [], [], []
    for v in range(k):
        first = judgements[0][v]
        texts.append(first.text)
        if task.kind == "pointwise":
            if first.text is None:
                values.append(-1), fails.append("judge_error")
                continue
            p = parse_pointwise(first.text, lo, hi)
            values.append(p.value if p.ok else -1), fails.append(None if p.ok else "parse_failure")
            continue
        second = judgements[1][v]
        if first.text is None or second.text is None:
            values.append(-1), fails.append("judge_error")
            continue
        p1, p2 = parse_pairwise(first.text, strict=True), parse_pairwise(second.text, strict=True)  # ambiguous = no vote
        if not (p1.ok and p2.ok):
            values.append(-1), fails.append("parse_failure")
            continue
        v1 = 0 if p1.value == "A" else 1
        v2 = 1 if p2.value == "A" else 0   # in the B/A order, A shows the second response
        if v1 != v2:
            values.append(-1), fails.append("order_inconsistent")
        else:
            values.append(v1), fails.append(None)
    return values, fails, texts
