"""2-process worker (torch.distributed.run, gloo) for tests/scorers/test_dp_scorers.py: the scorer seam's
data-parallel pieces against one-process references that every rank computes locally, without the co-training loop.

    python -m torch.distributed.run --nproc_per_node 2 tests/scorers/dp_scorer_worker.py TINY_MODEL OUT_JSON

Rank r writes ``OUT_JSON`` with suffix ``.rank<r>``: one entry per case (see :func:`main`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from longrm.config import ModelConfig
from longrm.scorers.base import DataParallel, Sample, UpdateBatch
from longrm.scorers.longrm_rm import LongRMScorer
from longrm.scorers.rule import RuleScorer
from longrm.scorers.spark import SparkScorer

G = 3


def batch(rule_per_group: list[list[float]]) -> tuple[list[Sample], torch.Tensor]:
    """Groups of G arithmetic rollouts with the given rule scores (global group ids 0..)."""
    samples, rule = [], []
    for g, rs in enumerate(rule_per_group):
        a, b = g + 1, 2 * g + 1
        for j, r in enumerate(rs):
            text = str(a + b) if r == 1 else f"I think {a + b + 1 + j}"
            samples.append(Sample(f"What is {a} + {b}?", text, str(a + b), g))
            rule.append(r)
    return samples, torch.tensor(rule)


def sliced(samples, rule, dp: DataParallel, groups_per_rank: list[int]) -> UpdateBatch:
    """This rank's whole groups (``groups_per_rank[r]`` groups for rank r, in order)."""
    start = sum(groups_per_rank[:dp.rank]) * G
    end = start + groups_per_rank[dp.rank] * G
    n = end - start
    return UpdateBatch(samples[start:end], torch.zeros(n), rule[start:end], torch.zeros(n), dp=dp)


def case_sum_grads(dp: DataParallel) -> dict:
    """Per-rank gradients summed in tiny buckets (5 elements: several buckets, one parameter larger than a bucket);
    parameter ``c`` has a gradient on rank 1 only, ``d`` on no rank."""
    torch.manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(*shape)) for shape in ((2, 3), (4,), (7,), (3,))]
    grads = [[torch.randn(p.shape) for p in ps] for _ in range(dp.size)]  # same on every rank: the references
    for r in range(dp.size):
        if r != 1:
            grads[r][2] = None
        grads[r][3] = None
    for p, gr in zip(ps, grads[dp.rank]):
        p.grad = None if gr is None else gr.clone()
    dp.sum_grads(ps, bucket=5)
    want = [None if all(g[i] is None for g in grads) else sum(g[i] for g in grads if g[i] is not None)
            for i in range(len(ps))]
    ok = all((p.grad is None) == (w is None) for p, w in zip(ps, want))
    diff = max(float((p.grad - w).abs().max()) for p, w in zip(ps, want) if w is not None)
    return {"none_pattern_ok": ok, "max_diff": diff, "grad_c": ps[2].grad.tolist()}


def case_rm_update(dp: DataParallel, model_dir: str, rule_per_group, groups_per_rank) -> dict:
    """Cooper step under DP (each rank: its groups) vs the one-process step on the whole batch (a second RM built
    from the same seed), two steps.  Reports the gradients each optimizer step applied (largest difference per
    tensor over that tensor's largest gradient) and the weights after each step."""
    mc = ModelConfig(name_or_path=model_dir, dtype="float32", gradient_checkpointing=False)

    def fresh():  # the same seed: the same fresh score head
        torch.manual_seed(0)
        rm = LongRMScorer(mc, mode="discriminative", update=True, update_lr=1e-4, device="cpu")
        step, rm.applied = rm.optimizer.step, []

        def recording_step():
            rm.applied.append({k: p.grad.clone() for k, p in rm.model.named_parameters() if p.grad is not None})
            return step()

        rm.optimizer.step = recording_step
        return rm

    rm, ref = fresh(), fresh()
    samples, rule = batch(rule_per_group)
    out = {"metrics": [], "ref_metrics": [], "max_diff": [], "grad_rel": []}
    start = {k: v.detach().clone() for k, v in rm.model.state_dict().items()}
    for _ in range(2):  # two steps: the AdamW state must match too
        out["metrics"].append(rm.update(sliced(samples, rule, dp, groups_per_rank)))
        out["ref_metrics"].append(ref.update(UpdateBatch(samples, torch.zeros(len(samples)), rule,
                                                         torch.zeros(len(samples)))))
        a, b = rm.model.state_dict(), ref.model.state_dict()
        out["max_diff"].append(max(float((a[k] - b[k]).abs().max()) for k in a))
        ga, gb = rm.applied[-1], ref.applied[-1]
        assert ga.keys() == gb.keys()
        out["grad_rel"].append(max(float((ga[k] - gb[k]).abs().max() / gb[k].abs().max().clamp(min=1e-12)) for k in gb))
    out["moved"] = max(float((rm.model.state_dict()[k] - v).abs().max()) for k, v in start.items())
    flat = torch.cat([p.detach().reshape(-1) for p in rm.model.parameters()])
    out["fingerprint"] = [float(flat.sum()), float(flat.abs().sum()), float(flat[::997].double().pow(2).sum())]
    return out


def case_spark(dp: DataParallel) -> dict:
    """SPARK tasks: DP emit (rank 0: 1 group, rank 1: 3 groups) vs one process on the whole batch, same seed."""
    samples, rule = batch([[1, 1, 1], [0, 0, 0], [1, 0, 1], [0, 1, 0]])
    got = SparkScorer(RuleScorer("exact"), p_pointwise=0.5, seed=3).emit_tasks(sliced(samples, rule, dp, [1, 3]))
    want = SparkScorer(RuleScorer("exact"), p_pointwise=0.5, seed=3).emit_tasks(
        UpdateBatch(samples, torch.zeros(len(samples)), rule, torch.zeros(len(samples))))
    # local (per-rank) group ids are refused: both ranks would hold group 0
    local = sliced(samples, rule, dp, [2, 2])
    for s in local.samples:
        s.group -= 2 * dp.rank
    try:
        local.gathered()
        refused = False
    except ValueError:
        refused = True
    return {"tasks": got, "want": want, "refused_local_ids": refused}


def main():
    model_dir, out = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group("gloo")
    dp = DataParallel.from_torch()
    res = {"size": dp.size, "rank": dp.rank, "sum_grads": case_sum_grads(dp), "spark": case_spark(dp),
           # both ranks hold pairs; then rank 0's groups have none (it makes no forward, its gradients are zeros)
           "rm_both": case_rm_update(dp, model_dir, [[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], [2, 2]),
           "rm_rank1_only": case_rm_update(dp, model_dir, [[1, 1, 1], [0, 1, 0], [1, 0, 0]], [1, 2])}
    Path(f"{out}.rank{dp.rank}").write_text(json.dumps(res))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
