"""Prompt → parse round-trips, incl. the shuffled display order mapped back (REFERENCE §1.1)."""
import re

from hypothesis import given, settings, strategies as st

from longrm.eval.protocol import decide, decide_scores, plan
from longrm.eval.samples import EvalSample, task_prompt


def _sample(n, sid="s1"):
    return EvalSample(id=sid, prompt=[{"role": "system", "content": "sys"}, {"role": "user", "content": "ctx Q?"}],
                      candidates=[f"answer number {i}" for i in range(n)],
                      tasktype="PairWise" if n == 2 else "BestOfN", source="LongQA", subtype="same" if n == 2 else str(n),
                      ctx_length="4k", question="Q?")


def _shown(messages):
    """Candidate indices in display order, read back out of the rendered prompt."""
    user = messages[-1]["content"]
    return [int(m) for m in re.findall(r"Answer\]\nanswer number (\d+)", user)]


def _perfect_judge(messages, n):
    """A judge that reads the prompt and answers the gold order (lower index = better)."""
    shown = _shown(messages)
    assert sorted(shown) == list(range(n))
    labels = "ABCDEFGH"
    if n == 2:
        return "[[A]]" if shown[0] == 0 else "[[B]]"
    best_first = sorted(range(n), key=lambda pos: shown[pos])
    return "[Analysis] fine\n[Ranking]\n[[" + ">".join(labels[p] for p in best_first) + "]]"


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6), st.text(min_size=1, max_size=8), st.integers(0, 1000))
def test_shuffled_order_maps_back(n, sid, seed):
    s = _sample(n, sid)
    p = plan(s, "generative", seed=seed)
    assert [s.candidates[i] for i in p.order] == [f"answer number {i}" for i in _shown(p.requests[0])]
    row = decide(p, [_perfect_judge(p.requests[0], n)])
    assert row["prediction"] == list(range(n)) and row["score"] == 1.0 and row["parse_ok"]


def test_plan_is_deterministic_and_uses_task_prompt():
    s = _sample(4)
    p1, p2 = plan(s, "generative"), plan(s, "generative")
    assert p1.order == p2.order and p1.requests == p2.requests
    assert task_prompt(s) == "sys\n\nctx Q?"
    assert "sys\n\nctx Q?" in p1.requests[0][-1]["content"]
    assert "[[A>B>C>D]]" in p1.requests[0][0]["content"]


def test_pairwise_wrong_and_failed():
    s = _sample(2)
    p = plan(s, "generative")
    chosen_at = p.order.index(0)
    wrong = "[[B]]" if chosen_at == 0 else "[[A]]"
    row = decide(p, [wrong])
    assert row["prediction"] == [1, 0] and row["score"] == 0.0 and row["parse_ok"]
    row = decide(p, ["I cannot decide"])
    assert row["prediction"] is None and row["score"] == 0.0 and not row["parse_ok"] and row["error"]


def test_best_of_n_partial_credit():
    s = _sample(3)
    p = plan(s, "generative", seed=42)
    labels = "ABC"
    # rank original 0 first, then 2, then 1: positions 0 right, 1 and 2 wrong
    text = "[Ranking] [[" + ">".join(labels[p.order.index(i)] for i in (0, 2, 1)) + "]]"
    row = decide(p, [text])
    assert row["prediction"] == [0, 2, 1] and abs(row["score"] - 1 / 3) < 1e-9


def test_pointwise_and_scores():
    s = _sample(3)
    p = plan(s, "pointwise")
    assert len(p.requests) == 3 and "<response>\nanswer number 1\n</response>" in p.requests[1][-1]["content"]
    assert "<prompt>\nQ?\n</prompt>" in p.requests[0][-1]["content"]
    row = decide(p, ["[Score: 9]", "[Score: 4]", "[Score: 4]"])
    assert row["scores"] == [9.0, 4.0, 4.0] and abs(row["score"] - 1 / 3) < 1e-9 and row["parse_ok"]
    row = decide(p, ["[Score: 9]", "no score", "[Score: 1]"])  # one candidate unscored: the sample scores 0
    assert not row["parse_ok"] and row["prediction"] is None and row["score"] == 0.0 and row["scores"][1] is None
    pw = plan(_sample(2), "pointwise")
    assert decide(pw, ["[Score: 9]", "rambling"])["score"] == 0.0  # not a win over the unscored candidate
    d = plan(s, "discriminative")
    assert d.requests[2][-1] == {"role": "assistant", "content": "answer number 2"}
    assert decide_scores(d, [0.5, 0.1, -2.0])["score"] == 1.0


def test_thinking_is_not_the_verdict():
    s = _sample(2)
    p = plan(s, "generative")
    right = "[[A]]" if p.order[0] == 0 else "[[B]]"
    wrong = "[[B]]" if right == "[[A]]" else "[[A]]"
    row = decide(p, [f"<think>maybe {wrong}? no.</think>\nFinal: {right}"])
    assert row["parse_ok"] and row["score"] == 1.0 and row["raw"][0].startswith("<think>")
