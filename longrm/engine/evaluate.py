"""Held-out evaluation shared by the stages: run a stage's ``step_fn`` without gradients over an eval set.

Examples are split over DP ranks (SP ranks of a group take the same ones); every rank runs the same number of
micro-batches (a rank short of examples repeats one with weight 0) so collective ops inside the model (SP,
ZeRO-3) stay matched.  Returns the example-weighted mean loss and the pair-weighted preference accuracy
(and mean reward margin), identical on every rank.
"""
from __future__ import annotations

import math

import torch

__all__ = ["evaluate_set", "eval_batches"]


def eval_batches(n: int, par, micro_batch_size: int) -> list[tuple[list[int], float]]:
    """This rank's micro-batches of eval indices and their weights (0 for padding batches)."""
    per_round = par.dp_size * micro_batch_size
    rounds = max(1, math.ceil(n / per_round))
    out = []
    for r in range(rounds):
        lo = r * per_round + par.dp_rank * micro_batch_size
        idx = list(range(lo, min(lo + micro_batch_size, n)))
        out.append((idx, 1.0) if idx else ([0], 0.0))
    return out


def evaluate_set(module, dataset, collate, step_fn, par, micro_batch_size: int) -> dict:
    import torch.distributed as dist

    sums = torch.zeros(5, dtype=torch.float64)  # examples, loss*ex, pairs, correct pairs, margin*ex
    with torch.no_grad():
        for idx, w in eval_batches(len(dataset), par, micro_batch_size):
            batch = collate([dataset[i] for i in idx])
            out = step_fn(module, batch, idx)
            ex = batch.num_examples * w
            pairs = (batch.num_branches - batch.num_examples) * w
            sums += torch.tensor([ex, float(out.loss) * ex, pairs,
                                  float(out.metrics.get("accuracy", float("nan"))) * pairs,
                                  float(out.metrics.get("reward_margin", 0.0)) * ex], dtype=torch.float64)
    if dist.is_initialized() and dist.get_world_size() > 1:
        # CUDA only: NCCL reduces GPU tensors; gloo (CPU) takes the CPU tensor
        dev = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
        t = sums.to(dev)
        dist.all_reduce(t)
        sums = t.cpu() / par.sp_size  # SP ranks of a group counted the same examples
    ex, loss, pairs, correct, margin = sums.tolist()
    out = {"loss": loss / max(ex, 1), "examples": ex}
    if pairs > 0 and not math.isnan(correct):
        out["accuracy"] = correct / pairs
        out["reward_margin"] = margin / max(ex, 1)
    return out
