"""2-process worker for tests/parallel/test_sequence_parallel.py (run under torch.distributed.run, gloo).

Every rank builds the same tiny model and batch, computes the SP=1 reference locally (no communication),
then the SP=2 loss and gradients in the case's row layout (zigzag: rank r owns chunks r and 3-r of 4;
contiguous: one half each); gradients are world-averaged (what DeepSpeed does) and compared with the
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
    if case == "single":  # one plain causal sequence of 45 tokens (odd; zigzag pads it to 48 = 4 chunks of 12)
        return pack([shared_context_example([], [rand_ids(g, 45)])])
    if case.endswith("ctxonly"):  # one long context (87 tokens): one rank's rows hold no target and no last token
        # (contiguous: rank 0 = rows 0-43; zigzag: rank 1 = chunks 1, 2 = rows 22-65, all context)
        return pack([shared_context_example(rand_ids(g, 71), [rand_ids(g, 6), rand_ids(g, 3), rand_ids(g, 5)])])
    # shared context, V = 2 rejects; the first context straddles the SP cut
    exs = [
        shared_context_example(rand_ids(g, 37), [rand_ids(g, 6), rand_ids(g, 9), rand_ids(g, 4)]),
        shared_context_example(rand_ids(g, 21), [rand_ids(g, 5), rand_ids(g, 3), rand_ids(g, 8)]),
    ]
    return pack(exs)


def loss_of(case, model, batch, par):
    if case in ("packed", "single"):
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


CASES = [  # (name, loss case, arch, checkpointing, head_stride, sp_layout); zigzag is the default layout
    ("packed-llama", "packed", "llama", None, 0, "zigzag"),
    ("packed-llama-ckpt", "packed", "llama", "reentrant", 1, "zigzag"),
    ("single-sequence-qwen2", "single", "qwen2", None, 0, "zigzag"),
    ("logo-llama", "logo", "llama", None, 1, "zigzag"),
    ("logo-llama-ckpt", "logo", "llama", "non-reentrant", 0, "zigzag"),
    ("logo-qwen2", "logo", "qwen2", None, 0, "zigzag"),
    ("disrm-llama", "disrm", "llama", None, 0, "zigzag"),
    ("disrm-qwen2-ckpt", "disrm", "qwen2", "reentrant", 1, "zigzag"),
    ("logo-llama-context-only-rank", "logo-ctxonly", "llama", None, 0, "zigzag"),
    ("disrm-llama-context-only-rank", "disrm-ctxonly", "llama", "non-reentrant", 0, "zigzag"),
    # the contiguous layout stays exact too (parallel.sp_layout: contiguous)
    ("packed-llama-contiguous", "packed", "llama", None, 1, "contiguous"),
    ("logo-llama-ckpt-contiguous", "logo", "llama", "non-reentrant", 0, "contiguous"),
    ("logo-llama-rank0-context-only-contiguous", "logo-ctxonly", "llama", None, 0, "contiguous"),
    ("disrm-llama-rank0-context-only-contiguous", "disrm-ctxonly", "llama", "non-reentrant", 0, "contiguous"),
]


def main():
    out_path = sys.argv[1]
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else None
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=180))  # a deadlock fails fast
    torch.set_num_threads(1)
    pars = {lay: ParallelContext.from_world(sp_size=2, sp_layout=lay) for lay in ("zigzag", "contiguous")}
    single = ParallelContext.single()
    results = {}
    for name, case, arch, ckpt, stride, layout in CASES:
        par = pars[layout]
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
            "layout": par.sp_layout,
            "rows": [list(r) for r in par.shard_ranges(par.padded_length(batch.length))],
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
