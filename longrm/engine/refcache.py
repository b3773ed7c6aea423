"""Frozen-reference log-probs for DPO, computed once and cached on disk (REFERENCE §1.5: "reference log-probs
can be precomputed").

The reference is the policy at step 0, so the align stage calls :func:`reference_logps` right after
``deepspeed.initialize`` and before the first optimizer step (works under ZeRO-3: the engine gathers
parameters as in training).  Each DP rank scores its share of the examples (SP ranks together), the results
are all-gathered, and rank 0 writes ``{key, logps [n, 1+V], mask}`` atomically.  A later run (a resume after a
kill, or a rerun) loads the file when its ``key`` -- model, data, tokenization and V -- matches; resuming
with the cache missing is refused, because the weights are no longer the reference.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .dist import barrier, is_main
from .evaluate import eval_batches

__all__ = ["reference_logps"]


def reference_logps(module, dataset, collate, logp_fn, par, path: str | os.PathLike, key: dict,
                    micro_batch_size: int, num_rejects: int, allow_compute: bool = True) -> torch.Tensor:
    """``[n, 1 + V]`` summed reference log-probs (chosen, rejects; 0 where an example has fewer rejects).

    ``logp_fn(module, batch) -> (sum_logps [N], counts [N])`` is the compute core's ``branch_logprobs``.
    """
    import torch.distributed as dist

    path = Path(path)
    if path.exists():
        blob = torch.load(path, weights_only=False)
        if blob.get("key") == key:
            return blob["logps"]
        if not allow_compute:
            raise RuntimeError(f"{path}: reference cache was made for other inputs ({blob.get('key')} vs {key})")
    if not allow_compute:
        raise RuntimeError(f"{path}: resuming DPO needs the reference log-prob cache written at step 0, and it is "
                           "missing; restore it or start over in a new output_dir")
    n = len(dataset)
    mine: dict[int, list[float]] = {}
    was_training = module.training
    module.eval()
    with torch.no_grad():
        for idx, w in eval_batches(n, par, micro_batch_size):
            batch = collate([dataset[i] for i in idx])
            lp, _ = logp_fn(module, batch)
            lp = lp.float().cpu()
            if w == 0:
                continue
            for e, i in enumerate(idx):
                row = [0.0] * (1 + num_rejects)
                sel = (batch.branch_example == e).nonzero().flatten()
                for b in sel.tolist():
                    r = int(batch.branch_rank[b])
                    if r <= num_rejects:
                        row[r] = float(lp[b])
                mine[i] = row
    if was_training:
        module.train()
    if dist.is_initialized() and dist.get_world_size() > 1:
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, mine)
        for p in parts:
            mine.update(p)
    logps = torch.tensor([mine[i] for i in range(n)], dtype=torch.float32)
    if is_main():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        torch.save({"key": key, "logps": logps}, tmp)
        os.replace(tmp, path)
    barrier()
    return logps
