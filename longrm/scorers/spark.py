"""``spark`` scorer: verifiable reward + judge and reflection tasks recycled from the rollouts (SPARK, REFERENCE §5).

Reward: the rule verifier's {0, 1} (RLVR).  ``emit_tasks(batch)`` turns each prompt group of the scored batch
into new *verifiable* prompts whose labels are known from the verifier, for the same RL loop.  At most one
judge task per group:

- all rollouts right  → pointwise item on a right answer, label ``Yes``;
- all rollouts wrong  → pointwise item on a random wrong answer, label ``No``;
- mixed               → pointwise (label by the chosen answer's rule score) with probability ``p_pointwise``
  (0.3), else pairwise: one right and one wrong answer shown as (A)/(B) in random order, label = the letter of
  the right one.

With ``reflection=True``, also one reflection task per group with a wrong rollout: the question and a random
wrong answer, said to be incorrect, → a corrected answer; label = the group's reference answer, so the
verifier rewards the revision like any answer to the question.

Pointwise: question + answer → "Yes"/"No"; pairwise: question, (A), (B) → letter; reflection: question + wrong
answer → fixed answer.  Tasks are themselves never recycled, and groups without a reference answer emit nothing.
The co-training loop queues the tasks and swaps them for whole prompt groups of the next generation batch
(:mod:`longrm.cotrain.trainer`); which queued tasks fill those slots is :meth:`SparkScorer.pick_tasks`: the
oldest first, or with ``task_ratios`` a fixed mix of kinds (:class:`TaskMix`).

The judge and reflection prompts are built by :func:`pointwise_prompt`, :func:`pairwise_prompt` and
:func:`reflection_prompt`; a judge's reply is read by :func:`parse_pointwise` / :func:`parse_pairwise`, which accept
exactly what the rule verifier rewards for the ``Yes`` / ``No`` / ``A`` / ``B`` labels.  SPARK's test-time
procedure (answer → self-judge → reflect when judged wrong) uses the same builders and parsers:
:mod:`longrm.scorers.spark_infer`.
"""
from __future__ import annotations

import random
from collections import deque
from typing import Mapping, Sequence

import torch

from .base import Sample, UpdateBatch
from .rule import RuleScorer, exact_match

__all__ = ["SparkScorer", "pointwise_task", "pairwise_task", "reflection_task", "spark_tasks", "TaskMix", "TASK_MARK",
           "TASK_KINDS", "pointwise_prompt", "pairwise_prompt", "reflection_prompt", "parse_verdict", "parse_pointwise",
           "parse_pairwise"]

TASK_MARK = "[judge task]"  # first line of every emitted prompt (reflection too): tasks are never recycled
TASK_KINDS = ("pointwise", "pairwise", "reflection")


def pointwise_prompt(question: str, answer: str) -> list[dict]:
    """Chat messages asking whether ``answer`` answers ``question`` correctly (reply ``Yes`` / ``No``)."""
    text = (f"{TASK_MARK}\nQuestion: {question}\nProposed answer: {answer}\n"
            "Is the proposed answer correct? Reply with Yes or No.")
    return [{"role": "user", "content": text}]


def pairwise_prompt(question: str, a: str, b: str) -> list[dict]:
    """Chat messages showing two answers as (A)/(B) and asking for the letter of the correct one."""
    text = (f"{TASK_MARK}\nQuestion: {question}\n(A) {a}\n(B) {b}\n"
            "Exactly one answer is correct. Reply with the letter of the correct answer.")
    return [{"role": "user", "content": text}]


def reflection_prompt(question: str, wrong: str) -> list[dict]:
    """Chat messages showing an answer to ``question`` said to be incorrect and asking for the corrected one."""
    text = (f"{TASK_MARK}\nQuestion: {question}\nProposed answer: {wrong}\n"
            "The proposed answer is incorrect. Say briefly what is wrong with it, then give the correct answer.")
    return [{"role": "user", "content": text}]


def parse_verdict(text: str, labels: Sequence[str]) -> str | None:
    """The one label of ``labels`` that the rule verifier accepts for ``text`` (one-word labels are matched by word:
    last ``\\boxed{}`` / "answer is" word, else the last word; case-insensitive), or None when none does."""
    hits = [label for label in labels if exact_match(text, label)]
    return hits[0] if len(hits) == 1 else None


def parse_pointwise(text: str) -> str | None:
    """A pointwise judgement → ``"Yes"`` / ``"No"`` / None (unparsed): ``"yes."`` → Yes, ``"7"`` → None."""
    return parse_verdict(text, ("Yes", "No"))


def parse_pairwise(text: str) -> str | None:
    """A pairwise judgement → ``"A"`` / ``"B"`` / None (unparsed): ``"The answer is B."`` → B."""
    return parse_verdict(text, ("A", "B"))


def pointwise_task(question: str, answer: str, correct: bool) -> dict:
    """Prompt row asking whether ``answer`` answers ``question`` correctly; label ``Yes`` / ``No``."""
    return {"prompt": pointwise_prompt(question, answer), "answer": "Yes" if correct else "No", "task": "pointwise"}


def pairwise_task(question: str, right: str, wrong: str, right_first: bool) -> dict:
    """Prompt row showing two answers as (A)/(B); label = the letter of the right one."""
    a, b = (right, wrong) if right_first else (wrong, right)
    return {"prompt": pairwise_prompt(question, a, b), "answer": "A" if right_first else "B", "task": "pairwise"}


def reflection_task(question: str, wrong: str, reference: str) -> dict:
    """Prompt row showing a wrong answer to ``question`` and asking for the corrected one; label = ``reference``."""
    return {"prompt": reflection_prompt(question, wrong), "answer": reference, "task": "reflection"}


def spark_tasks(samples: Sequence[Sample], rule_scores: torch.Tensor, rng: random.Random,
                p_pointwise: float = 0.3, reflection_rng: random.Random | None = None) -> list[dict]:
    """[N] scored rollouts (groups contiguous by ``Sample.group``) → task rows (module docstring), group by group:
    ≤ one judge task (choices drawn from ``rng``), then, with ``reflection_rng``, ≤ one reflection task (its wrong
    answer drawn from ``reflection_rng``: turning reflection on does not change the judge tasks).

    ``rule_scores``: [N] in {0, 1} or NaN (no reference: the group emits nothing).
    """
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.group, []).append(i)
    out = []
    for idx in groups.values():
        q = samples[idx[0]].prompt
        if q.startswith(TASK_MARK) or any(rule_scores[i] != rule_scores[i] for i in idx):
            continue
        right = [i for i in idx if rule_scores[i] >= 0.5]
        wrong = [i for i in idx if rule_scores[i] < 0.5]
        if not wrong:
            out.append(pointwise_task(q, samples[rng.choice(right)].completion, True))
        elif not right:
            out.append(pointwise_task(q, samples[rng.choice(wrong)].completion, False))
        elif rng.random() < p_pointwise:
            i = rng.choice(idx)
            out.append(pointwise_task(q, samples[i].completion, rule_scores[i] >= 0.5))
        else:
            out.append(pairwise_task(q, samples[rng.choice(right)].completion, samples[rng.choice(wrong)].completion,
                                     right_first=rng.random() < 0.5))
        if reflection_rng is not None and wrong:
            i = reflection_rng.choice(wrong)
            out.append(reflection_task(q, samples[i].completion, samples[i].answer))
    return out


class TaskMix:
    """Which queued tasks fill the injection slots, by kind, in fixed ratios (smooth weighted round-robin).

    ``ratios``: weight per kind (``pointwise`` / ``pairwise`` / ``reflection``; missing = 0).  For each slot the
    *eligible* kinds are those with weight > 0 and a task in the queue; each adds its weight to its credit, the
    kind with the largest credit wins (ties: the order of :data:`TASK_KINDS`), and the winner's credit drops by
    the eligible kinds' total weight; the winner's oldest queued task fills the slot.  With every kind eligible,
    each run of Σw slots (integer weights) holds exactly w_kind tasks of each kind (1:1:2 → reflection, pointwise,
    pairwise, reflection).  A kind with no queued task sits out and keeps its credit.  Credits carry over across
    batches (``state_dict``).
    """

    def __init__(self, ratios: Mapping[str, float]):
        bad = set(ratios) - set(TASK_KINDS)
        if bad:
            raise ValueError(f"task_ratios: unknown task kind(s) {sorted(bad)}; choose from {', '.join(TASK_KINDS)}")
        if any(not w >= 0 for w in ratios.values()) or not sum(ratios.values()) > 0:
            raise ValueError(f"task_ratios: weights must be >= 0 with a positive sum, got {dict(ratios)}")
        self.weights = {k: float(ratios.get(k, 0.0)) for k in TASK_KINDS}
        self.credit = {k: 0.0 for k in TASK_KINDS}

    def wants(self, kind: str) -> bool:
        """True when tasks of ``kind`` can ever be picked (weight > 0)."""
        return self.weights.get(kind, 0.0) > 0

    def take(self, queue: deque, k: int) -> list[dict]:
        """Pop up to ``k`` tasks from ``queue`` (oldest first within a kind), in slot order."""
        out = []
        for _ in range(k):
            present = {t.get("task") for t in queue}
            eligible = [kind for kind in TASK_KINDS if self.weights[kind] > 0 and kind in present]
            if not eligible:
                break
            for kind in eligible:
                self.credit[kind] += self.weights[kind]
            pick = max(eligible, key=lambda kind: (self.credit[kind], -TASK_KINDS.index(kind)))
            self.credit[pick] -= sum(self.weights[kind] for kind in eligible)
            idx = next(i for i, t in enumerate(queue) if t.get("task") == pick)
            out.append(queue[idx])
            del queue[idx]
        return out


class SparkScorer:
    """Reward = rule verifier; ``emit_tasks`` = SPARK judge (and reflection) tasks from the batch (seeded);
    ``pick_tasks`` = which queued tasks fill the next batch's injection slots.

    ``reflection``: also emit reflection tasks.  ``task_ratios``: injected mix by kind (:class:`TaskMix`); kinds
    with weight 0 are not emitted at all.  Empty: the oldest queued tasks first, whatever their kind.
    """

    name = "spark"

    def __init__(self, rule: RuleScorer, *, p_pointwise: float = 0.3, seed: int = 0, reflection: bool = False,
                 task_ratios: Mapping[str, float] | None = None):
        self.rule, self.p_pointwise, self.rng = rule, p_pointwise, random.Random(seed)
        self.reflection = reflection
        self.reflection_rng = random.Random(f"{seed}/reflection") if reflection else None
        self.mix = TaskMix(task_ratios) if task_ratios else None
        if self.mix is not None and reflection != self.mix.wants("reflection"):
            raise ValueError("spark: reflection tasks need a positive task_ratios['reflection'], and a positive "
                             "reflection ratio needs reflection: true")

    def state_dict(self) -> dict:
        """The task-choice RNG states and the task mix's credits (for resuming)."""
        return {"rng": self.rng.getstate(),
                "reflection_rng": None if self.reflection_rng is None else self.reflection_rng.getstate(),
                "mix_credit": None if self.mix is None else dict(self.mix.credit)}

    def load_state_dict(self, state: dict) -> None:
        def restore(r: random.Random, st) -> None:
            v, inner, gauss = st  # a reloaded state holds lists
            r.setstate((v, tuple(inner), gauss))

        restore(self.rng, state["rng"])
        if self.reflection_rng is not None and state.get("reflection_rng"):
            restore(self.reflection_rng, state["reflection_rng"])
        if self.mix is not None and state.get("mix_credit"):
            self.mix.credit.update(state["mix_credit"])

    def score(self, samples: Sequence[Sample]) -> list[float]:
        """[N] samples → [N] rule scores in {0, 1} (NaN without a reference)."""
        return self.rule.score(samples)

    def emit_tasks(self, batch: UpdateBatch) -> list[dict]:
        """The scored batch → new prompt rows ``{"prompt", "answer", "task"}`` (≤ one per prompt group).

        Data parallel: the ranks' slices are gathered first (:meth:`UpdateBatch.gathered`) and every rank emits
        from the whole batch with its copy of the RNG (same seed, same calls): the same task list on every rank,
        identical to the one-process run on the same batch.
        """
        full = batch.gathered()
        tasks = spark_tasks(full.samples, full.rule_scores, self.rng, self.p_pointwise, self.reflection_rng)
        return tasks if self.mix is None else [t for t in tasks if self.mix.wants(t["task"])]

    def pick_tasks(self, queue: deque, k: int) -> list[dict]:
        """Pop the (up to) ``k`` queued tasks that fill the next batch's injection slots, in slot order: the oldest
        first, or the :class:`TaskMix` order with ``task_ratios``.  Deterministic: the same on every rank."""
        if self.mix is None:
            return [queue.popleft() for _ in range(min(k, len(queue)))]
        return self.mix.take(queue, k)
