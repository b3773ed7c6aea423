"""SPARK task emission (REFERENCE §5) on crafted groups; word-label verification."""
import random

import pytest
import torch

from longrm.scorers import ScorerConfig, build_scorer, has_hook
from longrm.scorers.base import Sample, UpdateBatch
from longrm.scorers.rule import RuleScorer
from longrm.scorers.spark import TASK_MARK, pairwise_task, pointwise_task, spark_tasks


def _group(g, q, completions, answer):
    return [Sample(q, c, answer, g) for c in completions]


def test_task_kinds_per_group():
    samples = (_group(0, "What is 1 + 1?", ["2", "2"], "2")        # all right -> pointwise Yes
               + _group(1, "What is 2 + 2?", ["5", "3"], "4")      # all wrong -> pointwise No
               + _group(2, "What is 3 + 3?", ["6", "7"], "6")      # mixed
               + _group(3, "What is 4 + 4?", ["8", "9"], None)     # no reference -> nothing
               + _group(4, TASK_MARK + "\nQuestion: x", ["Yes", "No"], "Yes"))  # a judge task is not recycled
    rule = torch.tensor(RuleScorer("exact").score(samples))
    tasks = spark_tasks(samples, rule, random.Random(0), p_pointwise=0.0)  # mixed -> always pairwise
    assert [t["task"] for t in tasks] == ["pointwise", "pointwise", "pairwise"]
    assert tasks[0]["answer"] == "Yes" and "Proposed answer: 2" in tasks[0]["prompt"][0]["content"]
    assert tasks[1]["answer"] == "No" and "Question: What is 2 + 2?" in tasks[1]["prompt"][0]["content"]
    p = tasks[2]["prompt"][0]["content"]
    right_letter = tasks[2]["answer"]
    assert f"({right_letter}) 6" in p and f"({'B' if right_letter == 'A' else 'A'}) 7" in p
    assert all(t["prompt"][0]["content"].startswith(TASK_MARK) for t in tasks)
    # p_pointwise = 1: the mixed group gives a pointwise item labelled by its shown answer's rule score
    t = spark_tasks(samples, rule, random.Random(3), p_pointwise=1.0)[2]
    shown = t["prompt"][0]["content"].split("Proposed answer: ")[1].split("\n")[0]
    assert t["task"] == "pointwise" and t["answer"] == ("Yes" if shown == "6" else "No")
    # both letters occur over seeds (the right answer's position is random)
    letters = {spark_tasks(samples, rule, random.Random(s), 0.0)[2]["answer"] for s in range(20)}
    assert letters == {"A", "B"}


def test_word_labels_are_verified():
    r = RuleScorer()
    yes = pointwise_task("q", "a", True)["answer"]
    assert r.check("Yes", yes) and r.check("yes.", yes) and not r.check("No", yes) and not r.check("7", yes)
    b = pairwise_task("q", "right", "wrong", right_first=False)["answer"]
    assert b == "B" and r.check("The answer is B.", b) and r.check("(B)", b) and not r.check("A", b)


def test_spark_scorer_registry():
    s = build_scorer(ScorerConfig(name="spark"))
    assert has_hook(s, "emit_tasks") and not has_hook(s, "update") and not has_hook(s, "group_transform")
    samples = _group(0, "What is 1 + 2?", ["3", "4"], "3")
    sc = s.score(samples)
    assert sc == [1.0, 0.0]
    tasks = s.emit_tasks(UpdateBatch(samples, torch.tensor(sc), torch.tensor(sc), torch.zeros(2)))
    assert len(tasks) == 1 and tasks[0]["answer"] in ("Yes", "No", "A", "B")
    with pytest.raises(Exception):
        ScorerConfig(name="spark", spark={"p_pointwise": 2})


def test_state_dict_roundtrip():
    import torch as _t

    s = build_scorer(ScorerConfig(name="spark"))
    samples = _group(0, "What is 3 + 3?", ["6", "7"], "6")
    batch = UpdateBatch(samples, _t.tensor([1.0, 0.0]), _t.tensor([1.0, 0.0]), _t.zeros(2))
    s.emit_tasks(batch)
    state = s.state_dict()
    s2 = build_scorer(ScorerConfig(name="spark"))
    s2.load_state_dict({"rng": (state["rng"][0], list(state["rng"][1]), state["rng"][2])})  # lists after a reload
    assert [s.emit_tasks(batch) for _ in range(5)] == [s2.emit_tasks(batch) for _ in range(5)]
