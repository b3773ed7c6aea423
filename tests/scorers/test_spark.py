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


# -- reflection tasks and the injected task mix (issue 11 item 4) --------------------------------------------------

def test_reflection_tasks_beside_judge_tasks():
    from longrm.scorers.spark import reflection_task

    refl = reflection_task("What is 9 + 9?", "17", "18")["prompt"][0]["content"]
    samples = (_group(0, "What is 1 + 1?", ["2", "2"], "2")        # all right: no reflection
               + _group(1, "What is 2 + 2?", ["5", "5"], "4")      # all wrong: reflection on "5", label 4
               + _group(2, "What is 3 + 3?", ["6", "7"], "6")      # mixed: reflection on the one wrong answer "7"
               + _group(3, "What is 4 + 4?", ["9", "9"], None)     # no reference: nothing
               + _group(4, refl, ["18", "17"], "18"))              # a reflection task is not recycled
    rule = torch.tensor(RuleScorer("exact").score(samples))
    plain = spark_tasks(samples, rule, random.Random(0), p_pointwise=0.0)
    tasks = spark_tasks(samples, rule, random.Random(0), p_pointwise=0.0, reflection_rng=random.Random(1))
    assert [t["task"] for t in tasks] == ["pointwise", "pointwise", "reflection", "pairwise", "reflection"]
    assert [t for t in tasks if t["task"] != "reflection"] == plain  # the judge tasks are unchanged
    r1, r2 = tasks[2], tasks[4]
    assert r1["prompt"][0]["content"] == (f"{TASK_MARK}\nQuestion: What is 2 + 2?\nProposed answer: 5\nThe proposed "
                                          "answer is incorrect. Say briefly what is wrong with it, then give the "
                                          "correct answer.")
    assert r1["answer"] == "4" and "Proposed answer: 7\n" in r2["prompt"][0]["content"] and r2["answer"] == "6"
    # the verifier rewards the revision against the reference, like any answer to the question
    r = RuleScorer("exact")
    assert r.check("5 is one too many, so the answer is 4.", r1["answer"]) and not r.check("It is 5.", r1["answer"])


def _queue(kinds: str):
    from collections import deque

    names = {"p": "pointwise", "q": "pairwise", "r": "reflection"}
    return deque({"task": names[c], "id": i} for i, c in enumerate(kinds))


def test_task_mix_by_hand():
    from longrm.scorers.spark import TaskMix

    # weights p:q:r = 1:1:2, every kind queued.  Slot 1: credits (1, 1, 2) -> r, r -= 4 -> (1, 1, -2);
    # slot 2: (2, 2, 0) -> p (tie, p first), p -= 4 -> (-2, 2, 0); slot 3: (-1, 3, 2) -> q -> (-1, -1, 2);
    # slot 4: (0, 0, 4) -> r -> (0, 0, 0).  Oldest first within a kind.
    mix = TaskMix({"pointwise": 1, "pairwise": 1, "reflection": 2})
    q = _queue("pqrpqrpqr")  # ids: p 0,3,6  q 1,4,7  r 2,5,8
    got = mix.take(q, 4)
    assert [(t["task"][:4], t["id"]) for t in got] == [("refl", 2), ("poin", 0), ("pair", 1), ("refl", 5)]
    assert mix.credit == {"pointwise": 0.0, "pairwise": 0.0, "reflection": 0.0}
    # left: p 3,6  q 4,7  r 8.  Slot 1: (1, 1, 2) -> r 8 -> (1, 1, -2); reflection now empty, eligible p, q
    # (total 2): slot 2: (2, 2) -> p 3 -> (0, 2); slot 3: (1, 3) -> q 4 -> (1, 1); slot 4: (2, 2) -> p 6 -> (0, 2);
    # slot 5: only q left: 3 -> q 7 -> 2; slot 6: nothing queued -> stop
    got = mix.take(q, 6)
    assert [t["id"] for t in got] == [8, 3, 4, 6, 7] and not q
    assert mix.credit == {"pointwise": 0.0, "pairwise": 2.0, "reflection": -2.0}
    # 3:1 (reflection 0 never taken): (3, 1) -> p -> (-1, 1); (2, 2) -> p -> (-2, 2); (1, 3) -> q -> (1, -1);
    # (4, 0) -> p -> (0, 0); then again
    mix = TaskMix({"pointwise": 3, "pairwise": 1})
    q = _queue("r" + "q" * 10 + "p" * 10)
    short = {"pointwise": "p", "pairwise": "q", "reflection": "r"}
    assert "".join(short[t["task"]] for t in mix.take(q, 8)) == "ppqpppqp"
    assert q[0]["task"] == "reflection"
    # long run: exactly the ratios over whole cycles
    mix = TaskMix({"pointwise": 1, "pairwise": 1, "reflection": 2})
    q = _queue("pqr" * 40)
    kinds = [t["task"] for t in mix.take(q, 40)]
    assert (kinds.count("pointwise"), kinds.count("pairwise"), kinds.count("reflection")) == (10, 10, 20)


@pytest.mark.parametrize("bad", [{"task_ratios": {"judge": 1}}, {"task_ratios": {"pointwise": -1, "pairwise": 2}},
                                 {"task_ratios": {"pointwise": 0}}, {"task_ratios": {"reflection": 1}},
                                 {"reflection": True, "task_ratios": {"pointwise": 1}}])
def test_task_ratios_validated(bad):
    with pytest.raises(Exception, match="task_ratios"):
        ScorerConfig(name="spark", spark=bad)


def test_spark_scorer_reflection_and_mix():
    from collections import deque

    cfg = ScorerConfig(name="spark", spark={"reflection": True, "p_pointwise": 0.0,
                                            "task_ratios": {"pairwise": 1, "reflection": 2}})
    s = build_scorer(cfg)
    samples = (_group(0, "What is 1 + 1?", ["2", "2"], "2") + _group(1, "What is 2 + 2?", ["5", "3"], "4")
               + _group(2, "What is 3 + 3?", ["6", "7"], "6"))
    sc = torch.tensor(s.score(samples))
    tasks = s.emit_tasks(UpdateBatch(samples, sc, sc, torch.zeros(len(samples))))
    # pointwise has weight 0: not emitted (group 0's and group 1's pointwise items are dropped)
    assert [t["task"] for t in tasks] == ["reflection", "pairwise", "reflection"]
    q = deque(tasks)
    # credits (pairwise, reflection), total weight 3: (1, 2) -> r -> (1, -1); (2, 1) -> q -> (-1, 1)
    assert [t["task"] for t in s.pick_tasks(q, 2)] == ["reflection", "pairwise"]
    state = s.state_dict()
    assert state["mix_credit"] == {"pointwise": 0.0, "pairwise": -1.0, "reflection": 1.0}
    import io

    buf = io.BytesIO()
    torch.save({"scorer": state}, buf)  # as in a cotrain checkpoint's scorer_state.pt
    buf.seek(0)
    s2 = build_scorer(cfg)
    s2.load_state_dict(torch.load(buf, weights_only=True)["scorer"])
    assert s2.mix.credit == s.mix.credit
    assert [s.emit_tasks(UpdateBatch(samples, sc, sc, torch.zeros(6))) for _ in range(3)] == \
        [s2.emit_tasks(UpdateBatch(samples, sc, sc, torch.zeros(6))) for _ in range(3)]
    # without task_ratios: the oldest first, whatever the kind
    fifo = build_scorer(ScorerConfig(name="spark"))
    q = _queue("rqp")
    assert [t["id"] for t in fifo.pick_tasks(q, 2)] == [0, 1] and len(q) == 1
