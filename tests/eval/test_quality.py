"""Before/after reward-quality table and summary (longrm.eval.quality) from real metrics JSONs."""
import json

from longrm.eval.metrics import compute_metrics
from longrm.eval.quality import quality_summary, quality_table
from longrm.eval.report import summarize, write_metrics


def _rows(scores, length="4k", parse_ok=True, tasktype="PairWise"):
    return [{"source": "LongQA", "tasktype": tasktype, "subtype": "diff" if tasktype == "PairWise" else "3",
             "ctx_length": length, "score": s, "parse_ok": parse_ok} for s in scores]


def test_summary_and_table_by_hand(tmp_path):
    before = _rows([0, 0, 1, 0], parse_ok=False) + _rows([0.0], tasktype="BestOfN", parse_ok=False)
    after = _rows([1, 1, 1, 0]) + _rows([1, 0], length="8k") + _rows([2 / 3], tasktype="BestOfN")
    write_metrics(summarize(before, name="b", mode="pointwise"), tmp_path / "b" / "metrics.json")
    write_metrics(summarize(after, name="a", mode="pointwise"), tmp_path / "a" / "metrics.json")
    s = quality_summary([{"name": "judge", "stages": {"before": str(tmp_path / "b"), "after": str(tmp_path / "a"),
                                                      "missing": str(tmp_path / "nope")}}])
    b, a = s["judge"]["before"], s["judge"]["after"]
    assert b["pairwise"] == 0.25 and b["parse_failure_rate"] == 1.0 and b["by_length"] == {"4k": 0.25}
    assert a["pairwise"] == 4 / 6 and a["by_length"] == {"4k": 0.75, "8k": 0.5} and a["n_pairwise"] == 6
    assert abs(a["best_of_n"] - 2 / 3) < 1e-12 and a["parse_failure_rate"] == 0.0
    assert s["judge"]["missing"] is None
    table = quality_table(s)
    assert "| judge | before | 25.0 | 5–70 | 25.0 | – | 0.0 | 100.0 | 4 |" in table
    assert "| judge | after | 66.7 | 30–90 | 75.0 | 50.0 | 66.7 | 0.0 | 6 |" in table
    assert "| judge | missing | not run |" in table
    json.dumps(s)  # the pipeline prints it as one JSON line
    assert compute_metrics(after)["columns"]["PairWise Avg."]["value"] == a["pairwise"]


def test_wilson_interval_by_hand():
    """95% Wilson interval: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), evaluated by hand."""
    from longrm.eval.metrics import wilson_interval

    lo, hi = wilson_interval(0.25, 4)  # z² = 3.8415; center 0.37249, half-width 0.32688
    assert abs(lo - 0.04561) < 1e-4 and abs(hi - 0.69937) < 1e-4
    lo, hi = wilson_interval(38 / 45, 45)  # the quickstart's 84.4% on 45 pairs
    assert abs(lo - 0.7123) < 1e-3 and abs(hi - 0.9225) < 1e-3
    assert abs(wilson_interval(1.0, 10)[1] - 1.0) < 1e-12 and abs(wilson_interval(0.0, 10)[0]) < 1e-12
    assert wilson_interval(None, 0) is None


def test_results_markdown_names_the_interval():
    from longrm.eval.report import results_markdown

    rows = _rows([1, 1, 0, 1])
    md = results_markdown([summarize(rows, name="x", mode="pointwise")])
    assert "95% Wilson interval of PairWise Avg.: x: 30–95% of 4 pairs." in md
