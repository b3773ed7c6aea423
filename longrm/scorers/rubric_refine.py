"""Rubric refinement by progressive differentiation (REFERENCE §4, "Chasing the Tail", arXiv 2509.21500).

Over-optimisation comes mostly from misranking in the high-reward tail, so a rubric is refined on the responses it
scores *highest*.  Per prompt, with a pool of candidate responses (e.g. 16, ideally diverse and off-policy):

    for round t = 1..k:
        score the remaining candidates with the current rubric (the rubric judge, r = Σ w_i·V_i / Σ w_i)
        pick a pair (``pairs`` cycles through the kinds):
            top      — the two highest-scoring remaining responses (great vs good: tell excellent from great)
            diverse  — among the remaining responses scoring at least the median, the two least alike (word-set
                       Jaccard; different ``sources`` first): tell diverse strong responses apart
            random   — two random remaining responses (an ablation baseline, not part of the method)
        the proposer sees the prompt, the current rubric and the pair (A/B order random) and returns a full revised
        rubric that separates them (add / rewrite / split / delete criteria), as a JSON list
        an unparsable answer is asked again once at ``retry_temperature``; a second failure keeps the rubric
        the compared pair is excluded from later rounds (``exclude``)

The measure (:func:`separation`): on **held-out** (better, worse) pairs of strong responses that the loop never
saw, the fraction the rubric orders correctly (ties count ½), the strict fraction, the tie rate and the mean
margin r(better) − r(worse) — for the initial and the refined rubric.

Backends: the rubric judge and the proposer are each a local ``from_pretrained`` chat LM (:class:`LocalSampler`) or
an OpenAI-compatible server (:class:`ServerSampler`, over the project's one HTTP client).

    python -m longrm.scorers.rubric_refine IN.jsonl OUT.jsonl [--config configs/cotrain.yaml] [--scorer.rubric.KEY V]

reads rows ``{prompt, rubric?, candidates: [text | {text, source}], heldout?: [{better, worse}], answer?, ...}``,
writes them back with the refined ``rubric`` (the cotrain prompt loader reads that column), ``rubric_initial``,
``refine_history`` and ``separation`` ``{initial, refined}``, and prints a JSON summary.
"""
from __future__ import annotations

import json
import random
import re
import sys
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

from .base import Sample
from .rubric import RubricScorer, validate_rubric

__all__ = ["PROPOSER_SYSTEM", "proposer_messages", "parse_rubric", "select_pair", "RefineStep", "RefineResult",
           "RubricRefiner", "separation", "ServerSampler", "make_sampler", "refine_rows", "main"]

PAIR_KINDS = ("top", "diverse", "random")

PROPOSER_SYSTEM = (
    "You refine grading rubrics. A rubric is a list of binary criteria, each {\"criterion\": text, \"weight\": 1-3}; "
    "a response's score is the weighted share of the criteria it meets. You will see a user prompt, the current "
    "rubric and two responses that both score well under it. Decide which response is better, then write a full "
    "revised rubric that separates them: add, rewrite, split or delete criteria so that the better response meets "
    "criteria the other one misses. Every criterion must be a yes/no check that applies to any response to this "
    "prompt. Reply with the revised rubric as a JSON list and nothing else."
)
_KIND_TEXT = {
    "top": "the two highest-scoring responses under the current rubric: the rubric must tell an excellent response "
           "from a great one",
    "diverse": "two strong but very different responses: the rubric must tell diverse strong responses apart",
    "random": "two responses to this prompt: the rubric must tell the better one from the other",
}


def proposer_messages(prompt: str, rubric: list[dict], a: str, b: str, kind: str, context: str | None = None) -> list[dict]:
    """System + user messages of one proposer call (the rubric shown as the JSON list it must return)."""
    ctx = f"[Context]\n{context}\n[End of Context]\n\n" if context else ""
    cur = json.dumps([{"criterion": c["criterion"], "weight": c["weight"]} for c in rubric], ensure_ascii=False)
    user = (f"{ctx}[User Prompt]\n{prompt}\n\n[Current Rubric]\n{cur}\n\n[Response A]\n{a}\n[End of Response A]\n\n"
            f"[Response B]\n{b}\n[End of Response B]\n\nThese are {_KIND_TEXT[kind]}. "
            "Reply with the full revised rubric as a JSON list.")
    return [{"role": "system", "content": PROPOSER_SYSTEM}, {"role": "user", "content": user}]


def parse_rubric(text: object) -> list[dict] | None:
    """Proposer output → a validated rubric (weights clamped to [1, 3]), or None.

    The last JSON value in the text that is a list of criteria (or an object with a ``rubric`` list) is used.
    """
    if not isinstance(text, str):
        return None
    dec = json.JSONDecoder()
    found = None
    for m in re.finditer(r"[\[{]", text):
        try:
            val, _ = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(val, dict):
            val = val.get("rubric")
        if not isinstance(val, list):
            continue
        try:
            rub = validate_rubric(val)
        except ValueError:
            continue
        found = [{"criterion": c["criterion"], "weight": min(3.0, max(1.0, c["weight"]))} for c in rub]
    return found


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def select_pair(kind: str, remaining: Sequence[int], scores: Sequence[float], texts: Sequence[str],
                sources: Sequence[str] | None = None, rng: random.Random | None = None) -> tuple[int, int] | None:
    """Two candidate indices from ``remaining`` (``scores[k]`` belongs to ``remaining[k]``), by ``kind``; None if < 2.

    top: highest scores (ties: lower index first).  diverse: among those scoring ≥ the median, the pair with
    different sources first, then the lowest word-set Jaccard similarity, then the highest score sum, then indices.
    random: two at random (``rng``).
    """
    if len(remaining) < 2:
        return None
    order = sorted(range(len(remaining)), key=lambda k: (-scores[k], remaining[k]))
    if kind == "top":
        return remaining[order[0]], remaining[order[1]]
    if kind == "random":
        a, b = (rng or random.Random(0)).sample(list(remaining), 2)
        return a, b
    if kind != "diverse":
        raise ValueError(f"pair kind {kind!r}; choose from {', '.join(PAIR_KINDS)}")
    ranked = sorted(scores, reverse=True)
    median = ranked[len(ranked) // 2]  # the lower median
    tail = [k for k in order if scores[k] >= median]
    if len(tail) < 2:
        tail = order[:2]
    words = {k: _words(texts[remaining[k]]) for k in tail}

    def key(pair):
        x, y = pair
        same = sources is not None and sources[remaining[x]] == sources[remaining[y]]
        inter, union = len(words[x] & words[y]), len(words[x] | words[y]) or 1
        return (same, inter / union, -(scores[x] + scores[y]), min(remaining[x], remaining[y]), max(remaining[x], remaining[y]))

    x, y = min(combinations(tail, 2), key=key)
    a, b = sorted((x, y), key=lambda k: (-scores[k], remaining[k]))
    return remaining[a], remaining[b]


@dataclass
class RefineStep:
    round: int
    kind: str                      # top | diverse | random
    pair: tuple[int, int]          # candidate indices (first = higher score under the rubric before the round)
    shown: tuple[int, int]         # the same two in the order shown to the proposer (A, B)
    scores: list[float]            # rubric scores of the remaining candidates before the round (remaining order)
    rubric_before: list[dict]
    rubric_after: list[dict]
    attempts: int                  # proposer calls (1, or 2 after an unparsable answer)
    failure: str | None = None     # "unparsable" when both answers failed: the rubric was kept


@dataclass
class RefineResult:
    rubric: list[dict]
    initial: list[dict]
    steps: list[RefineStep] = field(default_factory=list)


class RubricRefiner:
    """The §4 loop for one prompt at a time: ``refine(prompt, rubric, candidates) -> RefineResult``.

    ``grader``: a :class:`RubricScorer` (its judge scores the candidates under each round's rubric);
    ``proposer``: anything with ``generate(convs, temperature) -> [text]`` (:class:`LocalSampler`,
    :class:`ServerSampler`, a scripted fake).
    """

    def __init__(self, grader: RubricScorer, proposer, *, rounds: int = 4, pairs: Sequence[str] = ("top",),
                 temperature: float = 0.7, retry_temperature: float = 1.0, exclude: bool = True, seed: int = 0):
        if not pairs or any(p not in PAIR_KINDS for p in pairs):
            raise ValueError(f"pairs must be a non-empty list of {', '.join(PAIR_KINDS)}; got {list(pairs)}")
        self.grader, self.proposer = grader, proposer
        self.rounds, self.pairs, self.exclude = rounds, list(pairs), exclude
        self.temperature, self.retry_temperature = temperature, retry_temperature
        self.rng = random.Random(seed)
        self.proposer_failures = 0

    def score(self, prompt: str, rubric: list[dict], texts: Sequence[str], context: str | None = None) -> list[float]:
        return self.grader.score([Sample(prompt=prompt, completion=t, rubric=rubric, context=context) for t in texts])

    def _propose(self, prompt, rubric, a, b, kind, context) -> tuple[list[dict] | None, int]:
        conv = proposer_messages(prompt, rubric, a, b, kind, context)
        for attempt, temp in enumerate((self.temperature, self.retry_temperature), start=1):
            new = parse_rubric(self.proposer.generate([conv], temperature=temp)[0])
            if new is not None:
                return new, attempt
        self.proposer_failures += 1
        return None, 2

    def refine(self, prompt: str, rubric: list[dict], candidates: Sequence[str], sources: Sequence[str] | None = None,
               context: str | None = None) -> RefineResult:
        rubric = validate_rubric(rubric)
        out = RefineResult(rubric=rubric, initial=rubric)
        remaining = list(range(len(candidates)))
        for t in range(self.rounds):
            kind = self.pairs[t % len(self.pairs)]
            scores = self.score(prompt, rubric, [candidates[i] for i in remaining], context)
            pair = select_pair(kind, remaining, scores, candidates, sources, self.rng)
            if pair is None:
                break
            shown = pair if self.rng.random() < 0.5 else (pair[1], pair[0])
            new, attempts = self._propose(prompt, rubric, candidates[shown[0]], candidates[shown[1]], kind, context)
            out.steps.append(RefineStep(round=t + 1, kind=kind, pair=pair, shown=shown, scores=list(scores),
                                        rubric_before=rubric, rubric_after=new or rubric, attempts=attempts,
                                        failure=None if new is not None else "unparsable"))
            rubric = new or rubric
            if self.exclude:
                remaining = [i for i in remaining if i not in pair]
        out.rubric = rubric
        return out


def separation(grader: RubricScorer, prompt: str, rubric: list[dict], pairs: Sequence[tuple[str, str]],
               context: str | None = None) -> dict[str, float]:
    """How well ``rubric`` orders held-out (better, worse) pairs: ``accuracy`` (ties ½), ``strict`` (ties 0),
    ``ties``, mean ``margin`` r(better) − r(worse), ``n``.  Each distinct response is judged once."""
    texts = sorted({t for p in pairs for t in p})
    if not texts:
        return {"n": 0, "accuracy": float("nan"), "strict": float("nan"), "ties": float("nan"), "margin": float("nan")}
    r = dict(zip(texts, grader.score([Sample(prompt=prompt, completion=t, rubric=rubric, context=context) for t in texts])))
    d = [r[b] - r[w] for b, w in pairs]
    n = len(d)
    return {"n": n, "accuracy": sum(1.0 if x > 0 else 0.5 if x == 0 else 0.0 for x in d) / n,
            "strict": sum(x > 0 for x in d) / n, "ties": sum(x == 0 for x in d) / n, "margin": sum(d) / n}


class ServerSampler:
    """Chat completions at a per-call temperature from an OpenAI-compatible server (vLLM, SGLang, ...), through the
    synthesis pipeline's :class:`~data_synthesis.judges.http.HTTPJudge` (one per temperature).  A failed request
    gives ``None`` (a parse failure for the caller); if every request of a call fails the server is taken to be down
    and :class:`~longrm.eval.backends.ServerError` stops the run."""

    def __init__(self, base_url: str, model: str, *, max_new_tokens: int = 512, api_key_env: str | None = None,
                 concurrency: int = 8, timeout: float = 600.0, max_retries: int = 4):
        self.kw = dict(api_key_env=api_key_env, concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                       top_p=1.0, max_tokens=max_new_tokens)
        self.base_url, self.model = base_url, model
        self._judges: dict[float, Any] = {}

    def generate(self, convs: Sequence[list[dict]], temperature: float = 0.0) -> list[str | None]:
        from data_synthesis.judges.base import JudgeRequest
        from data_synthesis.judges.http import HTTPJudge

        from ..eval.backends import ServerError

        judge = self._judges.get(temperature)
        if judge is None:
            judge = self._judges[temperature] = HTTPJudge(self.base_url, self.model, temperature=temperature, **self.kw)
        got = [js[0] for js in judge.judge([JudgeRequest(list(c), key=str(i)) for i, c in enumerate(convs)], n=1)]
        if got and all(j.text is None for j in got):
            raise ServerError(f"{judge.url}: every request failed (first: {got[0].error})")
        return [j.text for j in got]


def make_sampler(backend: str, model_cfg, server_cfg, *, max_new_tokens: int, batch_size: int = 8, device: str = "auto"):
    """A local ``from_pretrained`` chat LM or an OpenAI-compatible server, both ``generate(convs, temperature)``."""
    if backend == "server":
        return ServerSampler(server_cfg.base_url, server_cfg.model or model_cfg.name_or_path,
                             max_new_tokens=max_new_tokens, api_key_env=server_cfg.api_key_env,
                             concurrency=server_cfg.concurrency)
    from .sampling import LocalSampler

    return LocalSampler(model_cfg, max_new_tokens=max_new_tokens, batch_size=batch_size, device=device)


def _prompt_text(p: Any) -> str:
    if isinstance(p, list):
        return "\n\n".join(m.get("content", "") for m in p if isinstance(m, dict) and m.get("role") == "user")
    return str(p)


def refine_rows(rows: list[dict], refiner: RubricRefiner, default_rubric: list[dict] | None = None) -> tuple[list[dict], dict]:
    """Refine each row's rubric on its ``candidates``; measure held-out separation before and after.

    Returns the rows (with ``rubric``, ``rubric_initial``, ``refine_history``, ``separation``) and a summary: the
    mean held-out accuracy / strict accuracy / tie rate / margin of the initial and the refined rubrics over the
    rows that have ``heldout`` pairs, and the count of proposer failures.
    """
    out, sums = [], {"initial": {}, "refined": {}}
    n_held = 0
    for i, row in enumerate(rows):
        rub = row.get("rubric") or default_rubric
        if not rub:
            raise ValueError(f"row {i}: no 'rubric' and no default criteria (scorer.rubric.criteria)")
        cands = row.get("candidates") or []
        texts = [c["text"] if isinstance(c, dict) else str(c) for c in cands]
        sources = [str(c.get("source", "")) if isinstance(c, dict) else "" for c in cands]
        prompt, ctx = _prompt_text(row["prompt"]), row.get("context")
        res = refiner.refine(prompt, rub, texts, sources if any(sources) else None, ctx)
        new = dict(row, rubric=res.rubric, rubric_initial=res.initial,
                   refine_history=[{k: v for k, v in asdict(s).items() if k not in ("rubric_before",)} for s in res.steps])
        held = [(h["better"], h["worse"]) for h in row.get("heldout") or []]
        if held:
            n_held += 1
            sep = {"initial": separation(refiner.grader, prompt, res.initial, held, ctx),
                   "refined": separation(refiner.grader, prompt, res.rubric, held, ctx)}
            new["separation"] = sep
            for which in sums:
                for k in ("accuracy", "strict", "ties", "margin"):
                    sums[which][k] = sums[which].get(k, 0.0) + sep[which][k]
        out.append(new)
    summary = {"rows": len(rows), "rows_with_heldout": n_held, "proposer_failures": refiner.proposer_failures,
               "rounds": refiner.rounds, "pairs": refiner.pairs}
    for which in sums:
        summary[which] = {k: v / n_held for k, v in sums[which].items()} if n_held else {}
    return out, summary


def main(argv: list[str] | None = None) -> int:
    """``python -m longrm.scorers.rubric_refine IN OUT [--config CFG] [--scorer.rubric.KEY VALUE ...]``."""
    from ..config import load_config
    from ..cotrain.run import CotrainConfig
    from . import _rubric_judge

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0].startswith("-"):
        print("usage: python -m longrm.scorers.rubric_refine IN.jsonl OUT.jsonl [--config CFG] "
              "[--scorer.rubric.KEY VALUE ...]", file=sys.stderr)
        return 2
    src, dst, rest = argv[0], argv[1], argv[2:]
    config = None
    if "--config" in rest:
        k = rest.index("--config")
        config, rest = rest[k + 1], rest[:k] + rest[k + 2:]
    cfg = load_config(CotrainConfig, config, rest).scorer.rubric
    rf = cfg.refine
    grader = RubricScorer(_rubric_judge(cfg), temperature=cfg.temperature, retry_temperature=cfg.retry_temperature)
    proposer = make_sampler(rf.proposer_backend, rf.proposer, rf.proposer_server, max_new_tokens=rf.max_new_tokens,
                            batch_size=cfg.batch_size, device=cfg.device)
    refiner = RubricRefiner(grader, proposer, rounds=rf.rounds, pairs=rf.pairs, temperature=rf.temperature,
                            retry_temperature=rf.retry_temperature, exclude=rf.exclude, seed=rf.seed)
    with open(src) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    out, summary = refine_rows(rows, refiner, cfg.criteria or None)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
