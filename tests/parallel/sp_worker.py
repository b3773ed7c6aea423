"""2-process worker for tests/parallel/test_sequence_parallel.py (run under torch.distributed.run, gloo).

Every rank builds the same tiny model and batch, computes the SP=1 reference locally (no communication),
then the SP=2 loss and gradients; gradients are world-averaged (what DeepSpeed does) and compared with the
reference. Rank 0 writes {case: {...}} as JSON to argv[1].
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compute_helpers import grads, logo_loss, max_rel, rand_ids, tiny_model  # noqa: E402

from longrm.data.layout import pack, shared_context_example  # noqa: E402
from longrm.modeling import branch_logprobs, branch_rewards, prepare_model  # noqa: E402
from longrm.parallel.context import ParallelContext  # noqa: E402


def batch_for(case: str):
    g = torch.Generator().manual_seed(1234)
    if case == "packed":  # plain causal-LM samples + one SFT-style sample; 13+7+21+(9+1+6) = 57 tokens (odd)
        exs = [shared_context_example([], [rand_ids(g, n)]) for n in (13, 7, 21)]
        exs.append(shared_context_example(rand_ids(g, 10), [rand_ids(g, 6)]))
        return pack(exs)
    if case.endswith("ctxonly"):  # one long context: rank 0's slice holds no target and no last token
        return pack([shared_context_example(rand_ids(g, 71), [rand_ids(g, 6), rand_ids(g, 3), rand_ids(g, 5)])])
    # shared context, V = 2 rejects; the first context straddles the SP cut
    exs = [
        shared_context_example(rand_ids(g, 37), [rand_ids(g, 6), rand_ids(g, 9), rand_ids(g, 4)]),
        shared_context_example(rand_ids(g, 21), [rand_ids(g, 5), rand_ids(g, 3), rand_ids(g, 8)]),
    ]
    return pack(exs)


def loss_of(case, model, batch, par):
    if case == "packed":
        lp, cnt = branch_logprobs(model, batch, par, chunk_size=8)
        return -lp.sum() / cnt.sum()
    if case.startswith("logo"):
        lp, cnt = branch_logprobs(model, batch, par, chunk_size=8)
        return logo_loss(lp, cnt, batch.branch_example, batch.branch_rank)
    r = branch_rewards(model, batch, par)  # Bradley-Terry with rejects averaged (REFERENCE §1.6)
    losses = []
    for e in batch.branch_example.unique():
        re, rk = r[batch.branch_example == e], batch.branch_rank[batch.branch_example == e]
        losses.append(-F.logsigmoid(re[rk == 0][0] - re[rk > 0].mean()))
    return torch.stack(losses).mean()


CASES = [  # (name, loss case, arch, checkpointing, head_stride)
    ("packed-llama", "packed", "llama", None, 0),
    ("packed-llama-ckpt", "packed", "llama", "reentrant", 1),
    ("logo-llama", "logo", "llama", None, 1),
    ("logo-llama-ckpt", "logo", "llama", "non-reentrant", 0),
    ("logo-qwen2", "logo", "qwen2", None, 0),
    ("disrm-llama", "disrm", "llama", None, 0),
    ("disrm-qwen2-ckpt", "disrm", "qwen2", "reentrant", 1),
    ("logo-llama-rank0-context-only", "logo-ctxonly", "llama", None, 0),
    ("disrm-llama-rank0-context-only", "disrm-ctxonly", "llama", "non-reentrant", 0),
]


def main():
    out_path = sys.argv[1]
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else None
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=180))  # a deadlock fails fast
    torch.set_num_threads(1)
    par = ParallelContext.from_world(sp_size=2)
    single = ParallelContext.single()
    results = {}
    for name, case, arch, ckpt, stride in CASES:
        if only and name not in only:
            continue
        model = tiny_model(arch, kind="reward" if case.startswith("disrm") else "causal", seed=0)
        model.train()
        if ckpt:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": ckpt == "reentrant"})
        batch = batch_for(case)
        prepare_model(model, single, "torch", head_stride=stride)
        ref = loss_of(case, model, batch, single)
        ref.backward()
        gref = grads(model)
        model.zero_grad(set_to_none=True)
        prepare_model(model, par, "torch", head_stride=stride)
        loss = loss_of(case, model, batch, par)
        loss.backward()
        for p in model.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()
        grel, worst = max_rel(grads(model), gref)
        results[name] = {
            "length": batch.length,
            "loss_ref": ref.item(),
            "loss_sp": loss.item(),
            "loss_rel": abs(loss.item() - ref.item()) / max(abs(ref.item()), 1e-12),
            "grad_rel": grel,
            "worst_param": worst,
        }
    all_results = [None] * dist.get_world_size()
    dist.all_gather_object(all_results, results)
    if dist.get_rank() == 0:
        # the loss must also be identical on both SP ranks
        for name in results:
            results[name]["loss_rank_spread"] = abs(all_results[0][name]["loss_sp"] - all_results[1][name]["loss_sp"])
        Path(out_path).write_text(json.dumps(results, indent=1))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
