"""Consistency majority voting on crafted score sets (REFERENCE §1.3)."""
from data_synthesis.vote import vote


def test_unanimous_keeps_all_others_as_rejects():
    r = vote([8, 8, 8, 8, 8])
    assert r.ok and r.winner == 8 and r.chosen == 0 and r.conf == [5]
    assert r.rejects == [1, 2, 3, 4]


def test_official_example_order_most_inconsistent_first():
    # official row: Nemotron 4, Llama 2, MDCure -1, Qwen-plus 4, Qwen2.5 4 -> conf [3, 1, 1]
    r = vote([4, 2, -1, 4, 4])
    assert r.ok and r.winner == 4 and r.conf == [3, 1, 1]
    assert r.chosen == 0
    assert r.rejects[:2] == [2, 1]          # parse failure, then the farthest score
    assert sorted(r.rejects[2:]) == [3, 4]


def test_split_without_majority_is_dropped():
    r = vote([1, 2, 3, 4, 5])
    assert not r.ok and r.reason == "no_consensus" and r.conf == [1, 1, 1, 1, 1]
    r = vote([7, 7, 3, 3, 5])                # largest cluster 2 < strict majority 3
    assert not r.ok and r.reason == "no_consensus"


def test_strict_majority_counts_failures_against_consensus():
    assert vote([6, 6, 6, None, None]).ok     # 3 of 5
    r = vote([6, 6, None, None, None])        # only 2 parsed: cannot reach 3
    assert not r.ok and r.reason == "too_few_valid" and r.conf == [2, 1, 1, 1]
    r = vote([-1, -1, -1])
    assert not r.ok and r.reason == "too_few_valid" and r.num_valid == 0


def test_ties_judge_rank_or_drop():
    scores = [3, 9, 9, 3]                     # two clusters of 2 with min_agree=2
    r = vote(scores, min_agree=2)
    assert r.ok and r.winner == 3 and r.chosen == 0   # judge 0 is best ranked
    r = vote(scores, min_agree=2, rank=[3, 0, 1, 2])
    assert r.ok and r.winner == 9 and r.chosen == 1
    r = vote(scores, min_agree=2, tie_break="drop")
    assert not r.ok and r.reason == "tie"
    assert not vote(scores).ok                # default strict majority: 2 of 4 is not enough


def test_dissenting_rejects_only():
    r = vote([5, 5, 5, 2], rejects="dissenting")
    assert r.ok and r.rejects == [3]
    r = vote([5, 5, 5], rejects="dissenting")
    assert not r.ok and r.reason == "no_dissent"


def test_threshold_configurable():
    assert not vote([4, 4, 4, 1, 2], min_agree=4).ok
    assert vote([4, 4, 4, 4, 2], min_agree=4).ok


def test_pairwise_values():
    r = vote([0, 1, 0])
    assert r.ok and r.winner == 0 and r.rejects[0] == 1


def test_pairwise_votes_need_both_orders_and_unambiguous_verdicts():
    from data_synthesis.judges.base import Judgement
    from data_synthesis.sources import SourceExample
    from data_synthesis.tasks import Task, task_votes

    task = Task("t", "pairwise", SourceExample("e", "q", "c", ["a", "b"]), [0, 1], [], [])
    J = Judgement
    ab = [J("x [[A]]"), J("x [[A]]"), J("x [[B]]"), J("[[A]] or [[B]]"), J(None, "HTTP 503"), J("no verdict")]
    ba = [J("x [[B]]"), J("x [[A]]"), J("x [[A]]"), J("x [[B]]"), J("x [[B]]"), J("x [[B]]")]
    values, fails, texts = task_votes(task, [ab, ba])
    assert values == [0, -1, 1, -1, -1, -1]
    assert fails == [None, "order_inconsistent", None, "parse_failure", "judge_error", "parse_failure"]
    assert texts[0] == "x [[A]]" and texts[4] is None
