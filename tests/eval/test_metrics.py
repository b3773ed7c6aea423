"""Metrics on crafted predictions, checked by hand against the benchmark's definitions (REFERENCE §1.8)."""
import pytest

from longrm.eval.metrics import compute_metrics, rank_match_from_scores, rank_match_ratio, ranking_from_scores


def test_rank_match_ratio_by_hand():
    assert rank_match_ratio([0, 1], 2) == 1.0
    assert rank_match_ratio([1, 0], 2) == 0.0
    assert rank_match_ratio(None, 2) == 0.0
    assert rank_match_ratio([0, 2, 1], 3) == pytest.approx(1 / 3)
    assert rank_match_ratio([1, 0, 2, 3], 4) == 0.5
    assert rank_match_ratio([3, 2, 1, 0], 4) == 0.0
    assert rank_match_ratio([0, 0, 1], 3) == 0.0      # not a permutation
    assert rank_match_ratio([0, 1], 3) == 0.0


def test_score_ranking_ties_count_as_wrong():
    assert ranking_from_scores([3, 9, None]) == [1, 0, 2]
    assert rank_match_from_scores([9, 3]) == 1.0
    assert rank_match_from_scores([3, 9]) == 0.0
    assert rank_match_from_scores([5, 5]) == 0.0                  # pairwise tie → wrong
    assert rank_match_from_scores([7, 7, 1]) == pytest.approx(1 / 3)  # the two tied positions are wrong
    assert rank_match_from_scores([9, 5, 1, 0]) == 1.0
    assert rank_match_from_scores([None, None]) == 0.0
    assert rank_match_from_scores([2, None]) == 1.0                # a failed parse ranks last


def _r(task, tt, sub, L, score, ok=True):
    return {"source": task, "tasktype": tt, "subtype": sub, "ctx_length": L, "score": score, "parse_ok": ok}


def test_aggregates_by_hand():
    rows = [
        _r("LongQA", "PairWise", "same", "4k", 1),
        _r("LongQA", "PairWise", "diff", "4k", 0),
        _r("LongQA", "PairWise", "diff", "8k", 1),
        _r("Summ", "PairWise", "same", "128k", 0, ok=False),
        _r("Summ", "BestOfN", "2", "4k", 1),
        _r("Code", "BestOfN", "3", "8k", 1 / 3),
        _r("Code", "BestOfN", 4, "8k", 0.5),
        _r("Math", "BestOfN", "4", "16k", 0),
    ]
    m = compute_metrics(rows)
    c = {k: v["value"] for k, v in m["columns"].items()}
    n = {k: v["n"] for k, v in m["columns"].items()}
    assert c["LongQA"] == pytest.approx(2 / 3) and n["LongQA"] == 3
    assert c["Summ"] == 0.0 and n["Summ"] == 1              # task columns are pairwise only
    assert c["Code"] is None and c["Math"] is None          # no pairwise rows → None, not 0
    assert c["Same."] == 0.5 and c["Diff."] == 0.5
    assert c["PairWise Avg."] == 0.5
    assert c["Rank2"] == 1.0 and c["Rank3"] == pytest.approx(1 / 3) and c["Rank4"] == 0.25
    assert c["Rank Avg."] == pytest.approx((1 + 1 / 3 + 0.5 + 0) / 4)   # sample-weighted
    assert c["4k"] == 0.5 and c["8k"] == 1.0 and c["128k"] == 0.0 and c["16k"] is None  # pairwise only
    assert c["AVG."] == pytest.approx((1 + 0 + 1 + 0 + 1 + 1 / 3 + 0.5 + 0) / 8)
    assert m["parse_failures"] == 1 and m["parse_failure_rate"] == 1 / 8
    assert m["by_length_all"]["8k"]["value"] == pytest.approx((1 + 1 / 3 + 0.5) / 3)
    assert list(m["columns"])[:7] == ["LongQA", "Summ", "Safety", "ICL", "Cite", "Code", "Math"]
    assert list(m["columns"])[-1] == "AVG."


def test_extra_sources_and_ranks_are_appended():
    m = compute_metrics([_r("Ours", "PairWise", "diff", "32k", 1), _r("Ours", "BestOfN", "5", "32k", 0.2)])
    assert m["columns"]["Ours"]["value"] == 1.0
    assert m["columns"]["Rank5"]["value"] == 0.2
    assert m["groups"]["tasks"][-1] == "Ours"
