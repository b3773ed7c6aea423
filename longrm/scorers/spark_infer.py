"""SPARK at test time (REFERENCE §5): the policy answers, judges its own answer(s), and reflects when it judges wrong.

One model plays the policy, the judge and the reviser, with the prompts of the training-time judge tasks
(:mod:`longrm.scorers.spark`: :func:`~.spark.pointwise_prompt`, :func:`~.spark.pairwise_prompt`,
:func:`~.spark.reflection_prompt`) and their parsers (:func:`~.spark.parse_pointwise`,
:func:`~.spark.parse_pairwise`: what the rule verifier accepts for the ``Yes`` / ``No`` / ``A`` / ``B`` labels).
Per prompt, all steps batched over the prompts:

1. **Answer**: ``n_answers`` answers to the prompt's chat messages at ``temperature`` (0: greedy; more than one
   answer needs sampling).
2. **Self-judge**: one pointwise judgement per answer → ``Yes`` / ``No`` / None (unparsed).
3. **Select**: the answers ranked Yes > unparsed > No; the first answer of the best rank is the champion.  With
   ``pairwise`` and several answers of that rank, the others challenge it in order with a pairwise judgement
   (champion shown as (A), challenger as (B)); ``B`` makes the challenger the champion, ``A`` or unparsed keeps it.
   A challenger whose final answer (:func:`~.rule.extract_final_answer`, normalised) equals the champion's is
   skipped without a call.  One answer: no pairwise call.
4. **Reflect**: if the chosen answer's verdict is ``No`` (or unparsed with ``on_unparsed="reflect"``), the
   reflection prompt (question + that answer, "the proposed answer is incorrect …") gives a revision, which is
   judged pointwise again; a revision judged wrong is reflected on again, up to ``max_rounds`` reflections in all
   (0: judge only).  The final answer is the last revision, whatever its verdict, else the chosen answer.

Unparsed judgements (``on_unparsed``): ``keep`` (default) — only an explicit ``No`` triggers a reflection, an
unparsed verdict keeps the answer; ``reflect`` — an unparsed verdict counts as ``No``.  In the selection an
unparsed verdict ranks between ``Yes`` and ``No`` either way.

The judge calls use ``judge_temperature`` (0: greedy).  With sampling, each generation call reseeds torch from
``seed`` and the call's number, so a run is reproducible.  A long ``context`` column of the prompt set is not
shown (the questions are the prompts' user turns, as in the training-time tasks).

:func:`self_judge_reflect` runs the procedure on prompt rows with any ``generate(convs, temperature) -> [text]``
(:class:`~.sampling.LocalSampler`: a ``from_pretrained`` causal LM + its tokenizer's chat template);
:func:`reflection_report` scores the records with the rule verifier (accuracy before vs after reflection);
:func:`run_spark_infer` is the ``longrm spark_infer`` stage (``stages/spark_infer.py``).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Sequence

from pydantic import Field

from ..config import ModelConfig, Section
from ..cotrain.run import CotrainData
from .base import message_text
from .rule import RuleScorer, extract_final_answer, normalize_answer
from .spark import pairwise_prompt, parse_pairwise, parse_pointwise, pointwise_prompt, reflection_prompt

__all__ = ["ReflectRecord", "self_judge_reflect", "reflection_report", "SparkInferSection", "SparkInferData",
           "SparkInferConfig", "run_spark_infer"]

_RANK = {"Yes": 0, None: 1, "No": 2}  # selection order of the pointwise verdicts


class _Generator(Protocol):
    def generate(self, convs: Sequence[list[dict]], temperature: float = 0.0) -> list[str]: ...


@dataclass
class ReflectRecord:
    """One prompt's run of the procedure (module docstring).

    ``answers``: the initial answers; ``verdicts``: their pointwise self-judgements (``Yes`` / ``No`` / None);
    ``chosen``: index of the selected answer; ``revisions`` / ``revision_verdicts``: each reflection's output and
    its self-judgement; ``reflected``: at least one reflection happened; ``final``: the answer returned.
    ``judgements``: every judge call in order, ``{"kind": "pointwise" | "pairwise", "round": 0 for the initial
    answers / r for revision r, "target": answer index | [A index, B index] | "revision", "text", "verdict"}``.
    """

    question: str
    reference: str | None
    answers: list[str]
    verdicts: list[str | None]
    chosen: int
    revisions: list[str] = field(default_factory=list)
    revision_verdicts: list[str | None] = field(default_factory=list)
    judgements: list[dict] = field(default_factory=list)

    @property
    def reflected(self) -> bool:
        return bool(self.revisions)

    @property
    def before(self) -> str:
        """The selected answer, before any reflection."""
        return self.answers[self.chosen]

    @property
    def final(self) -> str:
        return self.revisions[-1] if self.revisions else self.answers[self.chosen]

    def to_dict(self) -> dict:
        return {**asdict(self), "reflected": self.reflected, "final": self.final}


def _final_key(text: str) -> str | None:
    got = extract_final_answer(text)
    return None if got is None else normalize_answer(got)


def self_judge_reflect(generator: _Generator, rows: Sequence[dict], *, n_answers: int = 1, max_rounds: int = 1,
                       temperature: float = 0.0, judge_temperature: float = 0.0, pairwise: bool = True,
                       on_unparsed: Literal["keep", "reflect"] = "keep", seed: int = 0) -> list[ReflectRecord]:
    """SPARK's test-time procedure (REFERENCE §5; module docstring) on prompt rows ``{"prompt": text | chat
    messages, "answer": reference | None}`` → one :class:`ReflectRecord` per row, in order.

    ``generator.generate(convs, temperature)`` answers a list of chat conversations (one text each); it is called
    once per step for all prompts: answers, pointwise judgements, each pairwise challenge, and per reflection round
    the revisions and their judgements.
    """
    if n_answers < 1 or max_rounds < 0:
        raise ValueError(f"need n_answers >= 1 and max_rounds >= 0, got {n_answers}, {max_rounds}")
    if n_answers > 1 and temperature <= 0:
        raise ValueError("n_answers > 1 needs temperature > 0 (greedy answers would all be the same)")
    if on_unparsed not in ("keep", "reflect"):
        raise ValueError(f"on_unparsed must be 'keep' or 'reflect', got {on_unparsed!r}")
    calls = [0]

    def gen(convs: list[list[dict]], temp: float) -> list[str]:
        if not convs:
            return []
        if temp > 0:
            import torch

            torch.manual_seed(seed * 1_000_003 + calls[0])
        calls[0] += 1
        out = list(generator.generate(convs, temperature=temp))
        if len(out) != len(convs):
            raise ValueError(f"generator returned {len(out)} texts for {len(convs)} conversations")
        return ["" if t is None else str(t) for t in out]

    def wrong(verdict: str | None) -> bool:
        return verdict == "No" or (verdict is None and on_unparsed == "reflect")

    messages = [[{"role": "user", "content": r["prompt"]}] if isinstance(r["prompt"], str) else list(r["prompt"])
                for r in rows]
    questions = [message_text(m) for m in messages]
    refs = [None if r.get("answer") is None else str(r["answer"]) for r in rows]

    # 1. answer, 2. self-judge every answer (pointwise)
    flat = gen([m for m in messages for _ in range(n_answers)], temperature)
    answers = [flat[i * n_answers:(i + 1) * n_answers] for i in range(len(rows))]
    texts = gen([pointwise_prompt(questions[i], a) for i in range(len(rows)) for a in answers[i]], judge_temperature)
    recs = []
    for i in range(len(rows)):
        jt = texts[i * n_answers:(i + 1) * n_answers]
        verdicts = [parse_pointwise(t) for t in jt]
        recs.append(ReflectRecord(questions[i], refs[i], answers[i], verdicts, chosen=0, judgements=[
            {"kind": "pointwise", "round": 0, "target": k, "text": t, "verdict": v}
            for k, (t, v) in enumerate(zip(jt, verdicts))]))

    # 3. select: best verdict rank, then pairwise challenges among the answers of that rank
    queues = []
    for rec in recs:
        best = min(_RANK[v] for v in rec.verdicts)
        cands = [k for k, v in enumerate(rec.verdicts) if _RANK[v] == best]
        rec.chosen = cands[0]
        queues.append(cands[1:] if pairwise else [])
    while True:
        todo = []
        for i, rec in enumerate(recs):
            while queues[i]:
                ch = queues[i].pop(0)
                key = _final_key(rec.answers[rec.chosen])
                if key is not None and key == _final_key(rec.answers[ch]):
                    continue  # same final answer as the champion: nothing to compare
                todo.append((i, ch))
                break
        if not todo:
            break
        texts = gen([pairwise_prompt(recs[i].question, recs[i].answers[recs[i].chosen], recs[i].answers[ch])
                     for i, ch in todo], judge_temperature)
        for (i, ch), t in zip(todo, texts):
            v = parse_pairwise(t)
            recs[i].judgements.append({"kind": "pairwise", "round": 0, "target": [recs[i].chosen, ch], "text": t,
                                       "verdict": v})
            if v == "B":
                recs[i].chosen = ch

    # 4. reflect while the current answer is judged wrong, at most max_rounds times
    active = [i for i, rec in enumerate(recs) if wrong(rec.verdicts[rec.chosen])]
    for rnd in range(1, max_rounds + 1):
        if not active:
            break
        revs = gen([reflection_prompt(recs[i].question, recs[i].final) for i in active], temperature)
        texts = gen([pointwise_prompt(recs[i].question, r) for i, r in zip(active, revs)], judge_temperature)
        for i, r, t in zip(active, revs, texts):
            v = parse_pointwise(t)
            recs[i].revisions.append(r)
            recs[i].revision_verdicts.append(v)
            recs[i].judgements.append({"kind": "pointwise", "round": rnd, "target": "revision", "text": t,
                                       "verdict": v})
        active = [i for i in active if wrong(recs[i].revision_verdicts[-1])]
    return recs


def _frac(k: int, n: int) -> float | None:
    return k / n if n else None


def reflection_report(records: Sequence[ReflectRecord], rule: RuleScorer) -> dict:
    """Rule-verifier accuracy of the records (rows with a reference only):

    ``acc_first`` (the first answer: the plain policy), ``acc_before`` (the selected answer, before reflection),
    ``acc_after`` (the final answer); ``reflected`` (records with a reflection, all rows), ``wrong_to_right`` /
    ``right_to_wrong`` (before → after); the self-judge on the initial answers: ``judge_n`` parsed verdicts,
    ``judge_accuracy`` (``Yes`` on a right answer or ``No`` on a wrong one), ``judge_unparsed``.  Fractions are
    None when nothing was counted.
    """
    ver = [r for r in records if r.reference is not None]
    first = [rule.check(r.answers[0], r.reference) for r in ver]
    before = [rule.check(r.before, r.reference) for r in ver]
    after = [rule.check(r.final, r.reference) for r in ver]
    judged = agree = unparsed = 0
    for r in ver:
        for a, v in zip(r.answers, r.verdicts):
            if v is None:
                unparsed += 1
                continue
            judged += 1
            agree += (v == "Yes") == rule.check(a, r.reference)
    n = len(ver)
    return {"n": len(records), "n_verified": n, "acc_first": _frac(sum(first), n), "acc_before": _frac(sum(before), n),
            "acc_after": _frac(sum(after), n), "reflected": sum(r.reflected for r in records),
            "wrong_to_right": sum(not b and a for b, a in zip(before, after)),
            "right_to_wrong": sum(b and not a for b, a in zip(before, after)),
            "judge_n": judged, "judge_accuracy": _frac(agree, judged), "judge_unparsed": unparsed}


# -- the `longrm spark_infer` stage -----------------------------------------------------------------------------------

class SparkInferData(CotrainData):
    """The co-training prompt sets (the same loader, ``load_prompt_rows``), a smaller default set."""
    path: str = Field("arithmetic:n=64,seed=0", description="prompts: 'arithmetic:n=..,seed=..,max=..,ops=+-*' "
                      "(built in) or jsonl / parquet / save_to_disk with prompt (+ answer) columns")


class SparkInferSection(Section):
    n_answers: int = Field(1, ge=1, description="answers per prompt (more than one needs temperature > 0)")
    max_rounds: int = Field(1, ge=0, description="reflections at most per prompt (0: self-judge only)")
    temperature: float = Field(0.0, ge=0, description="answers and revisions: 0 greedy, else sampled")
    judge_temperature: float = Field(0.0, ge=0, description="self-judgements: 0 greedy, else sampled")
    pairwise: bool = Field(True, description="several answers of the best verdict: pick by pairwise challenges")
    on_unparsed: Literal["keep", "reflect"] = Field("keep", description="an unparsed self-judgement keeps the "
                                                    "answer (keep) or counts as 'No' (reflect)")
    seed: int = Field(0, description="sampling seed")
    max_new_tokens: int = Field(512, ge=1, description="budget of every generation (answer, judgement, revision)")
    batch_size: int = Field(8, ge=1, description="conversations per generate call")
    device: str = Field("auto", description="auto: GPU if available, else CPU")
    rule_mode: Literal["auto", "math_verify", "exact"] = Field("auto", description="the verifier of the report")
    output_dir: str = Field("outputs/spark_infer", description="records.jsonl, report.json, resolved_config.yaml")


class SparkInferConfig(Section):
    model: ModelConfig = Field(default_factory=lambda: ModelConfig(gradient_checkpointing=False),
                               description="the SPARK-trained policy (also its own judge)")
    data: SparkInferData = SparkInferData()
    infer: SparkInferSection = SparkInferSection()


def run_spark_infer(cfg: SparkInferConfig, generator: Any = None) -> dict:
    """Load the prompts and the policy (``LocalSampler``, unless ``generator`` is given), run
    :func:`self_judge_reflect`, write ``records.jsonl`` + ``report.json`` + ``resolved_config.yaml`` into
    ``infer.output_dir`` and print the report as one JSON line; returns the report."""
    from ..config import atomic_write_text, save_resolved
    from ..cotrain.prompts import load_prompt_rows

    c = cfg.infer
    rows = load_prompt_rows(cfg.data.path, cfg.data.split, cfg.data.limit)
    if generator is None:
        from .sampling import LocalSampler

        generator = LocalSampler(cfg.model, max_new_tokens=c.max_new_tokens, batch_size=c.batch_size, device=c.device)
    recs = self_judge_reflect(generator, rows, n_answers=c.n_answers, max_rounds=c.max_rounds,
                              temperature=c.temperature, judge_temperature=c.judge_temperature, pairwise=c.pairwise,
                              on_unparsed=c.on_unparsed, seed=c.seed)
    report = reflection_report(recs, RuleScorer(c.rule_mode))
    out = Path(c.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, out)
    atomic_write_text(out / "records.jsonl", "".join(json.dumps(r.to_dict()) + "\n" for r in recs))
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    print(json.dumps(report), file=sys.stdout)
    return report
