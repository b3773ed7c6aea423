"""The scorer seam under data parallelism, 2 processes over gloo (launched by this test), without the co-training
loop: ``DataParallel.sum_grads`` (buckets, a gradient on one rank only), the Cooper step of ``LongRMScorer`` on
each rank's groups = the one-process step on the whole batch (also when one rank has no pair), SPARK's tasks from a
DP batch = one process's, and local group ids refused by ``UpdateBatch.gathered``."""
import json
from pathlib import Path

import pytest
import torch

from stage_helpers import run_worker
from longrm.scorers.base import DataParallel, UpdateBatch


def test_single_process_context_is_the_identity():
    dp = DataParallel()
    t = torch.tensor([1.0, 2.0])
    assert dp.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    assert dp.all_gather_objects("x") == ["x"]
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    dp.sum_grads([p])
    assert p.grad.tolist() == [3.0, 3.0]
    b = UpdateBatch([], torch.zeros(0), torch.zeros(0), torch.zeros(0))
    assert b.dp == DataParallel() and b.gathered() is b


@pytest.fixture(scope="module")
def dp_results(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dp-scorers") / "res.json"
    run_worker(Path(__file__).with_name("dp_scorer_worker.py"), [tiny_model_dir, out], timeout=300)
    return [json.loads(Path(f"{out}.rank{r}").read_text()) for r in (0, 1)]


@pytest.mark.distributed
def test_sum_grads_two_processes(dp_results):
    for r in dp_results:
        g = r["sum_grads"]
        assert r["size"] == 2 and g["none_pattern_ok"] and g["max_diff"] < 1e-6
    assert dp_results[0]["sum_grads"]["grad_c"] == dp_results[1]["sum_grads"]["grad_c"]  # rank 0 had none


@pytest.mark.distributed
@pytest.mark.parametrize("case, pairs", [("rm_both", 4.0), ("rm_rank1_only", 2.0)])
def test_rm_update_two_processes_equals_one(dp_results, case, pairs):
    for r in dp_results:
        c = r[case]
        assert [m["rm/pairs"] for m in c["metrics"]] == [pairs, pairs] == [m["rm/pairs"] for m in c["ref_metrics"]]
        assert [m["rm/loss"] for m in c["metrics"]] == pytest.approx([m["rm/loss"] for m in c["ref_metrics"]], abs=1e-6)
        assert max(c["grad_rel"]) < 1e-4  # the summed gradients = the one-process gradient (as the SP tests)
        # weights within 1e-5 after two AdamW steps of lr 1e-4 that moved them by ~2e-4 (AdamW's first steps scale
        # each element to ~lr, so rounding on near-zero gradient elements shows up as up to ~1% of lr)
        assert max(c["max_diff"]) < 1e-5 and c["moved"] > 1e-4
    assert dp_results[0][case]["fingerprint"] == dp_results[1][case]["fingerprint"]  # bitwise the same RM


@pytest.mark.distributed
def test_spark_tasks_two_processes(dp_results):
    tasks = [r["spark"]["tasks"] for r in dp_results]
    assert tasks[0] == tasks[1] == dp_results[0]["spark"]["want"] and len(tasks[0]) == 4
    assert {t["task"] for t in tasks[0]} >= {"pointwise"}
    assert all(r["spark"]["refused_local_ids"] for r in dp_results)
