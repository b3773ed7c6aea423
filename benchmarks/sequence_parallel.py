"""Benchmark: sequence parallelism SP=2 vs SP=1 — per-rank peak memory and attention time of one LOGO step.

Tiny Qwen2-shaped model (hidden 128, 2 layers, vocab 32000, fp32); 1 chosen + 2 rejects of 256 tokens in the
shared-context layout with judgement-only log-probs; contexts of 4K / 8K / 16K. SP=1 runs as one process
(2 threads), SP=2 as two gloo processes launched with ``torch.distributed.run`` (1 thread each), each in its
own subprocess (same environment). Memory is each rank's peak RSS (max over ranks), also reported above the
RSS after model + optimizer construction. Prints one JSON object on its last line.

``--layouts`` (default ``zigzag contiguous``): the SP=2 side runs once per row layout (``parallel.sp_layout``).
Per rank it reports the attention work of its plan — causal (query, key) pairs, proportional to the attention
FLOPs — and the measured attention kernel time: wall and thread-CPU seconds spent inside the block kernels
(``block_attention`` / ``block_attention_backward``, forward + backward, median over the measured steps),
which excludes the waits in the K/V all-gathers. ``attn_imbalance`` = slowest / fastest rank.

``--allocator`` sets the glibc allocator of *both* sides: ``default``; ``tuned`` (keeps and reuses freed memory:
faster, more resident, ../shared/notes/trl-dpo-baseline.md); ``lean`` (fixed 1 MiB mmap threshold: every
tensor is mapped and unmapped, so RSS follows the live tensors instead of what glibc's heap retains).

``--zero1`` makes the optimizer what the ``align`` stage runs (DeepSpeed ZeRO-1/2 shard the AdamW state over
*all* ranks, SP ranks included) on *both* sides identically: a world of 2 ranks, gradients all-reduced over
the world, AdamW state sharded over it (``ZeroRedundancyOptimizer``). The SP=1 side is then DP=2 (each rank
runs the whole row, as on a 2-device node without SP); the SP=2 side is one SP group of 2. Both sides run
1 thread per rank in this mode.

``--chunk`` is the LM-head chunk (default 256, as in ``shared_context.py``; ``align`` defaults to 1024, where the
768 judgement tokens fit one chunk and their fp32 softmax is kept from the forward to the backward).

    python benchmarks/sequence_parallel.py [--quick] [--contexts 4096 8192 16384] [--allocator default|tuned|lean]
                                           [--zero1] [--chunk 256] [--layouts zigzag contiguous]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_common import CHUNK  # noqa: E402


def _attention_timer():
    """Wrap the block kernels of the torch attention backend (benchmark only): accumulated wall / thread-CPU s."""
    import time

    from longrm.attention import kernels

    acc = {"wall": 0.0, "cpu": 0.0}

    def timed(fn):
        def wrapper(*a, **kw):
            t, c = time.perf_counter(), time.thread_time()
            out = fn(*a, **kw)
            acc["wall"] += time.perf_counter() - t
            acc["cpu"] += time.thread_time() - c
            return out
        return wrapper

    kernels.block_attention = timed(kernels.block_attention)
    kernels.block_attention_backward = timed(kernels.block_attention_backward)
    return acc


def _plan_pairs(batch, par) -> int:
    """Attention work of this rank's plan: n(n+1)/2 pairs per causal square, nq x nk per fully visible block."""
    from longrm.attention import build_plan

    b = batch.padded(par.padded_length(batch.length))
    plan = build_plan(b.doc_ids, b.branch_ids, par)
    return sum((p.q1 - p.q0) * (p.q1 - p.q0 + 1) // 2 if p.causal else (p.q1 - p.q0) * (p.k1 - p.k0)
               for p in plan.pieces)


def child(context: int, steps: int, sp: int, zero1: bool, chunk: int, layout: str = "zigzag") -> dict | None:
    import statistics

    import torch
    import torch.distributed as dist

    from _bench_common import build_model, logo_from_means, make_data, optimizer_step, peak_rss_gib, rss_gib, time_steps
    from longrm.data.layout import pack, shared_context_example
    from longrm.modeling import branch_logprobs, prepare_model
    from longrm.parallel.context import ParallelContext

    distributed = sp > 1 or zero1
    if distributed:
        dist.init_process_group("gloo")
    par = ParallelContext.from_world(sp_size=sp, sp_layout=layout)
    attn = _attention_timer()
    model = build_model()
    model.train()
    prepare_model(model, par, "torch")
    if zero1:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.AdamW, lr=1e-6)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    ctx, js = make_data(context)
    batch = pack([shared_context_example(ctx, js)])

    attn_steps = []

    def step():
        w0, c0 = attn["wall"], attn["cpu"]
        _step()
        attn_steps.append((attn["wall"] - w0, attn["cpu"] - c0))

    def _step():
        lp, cnt = branch_logprobs(model, batch, par, chunk_size=chunk)
        loss = logo_from_means(lp / cnt)
        if not zero1:
            optimizer_step(model, opt, loss)
            return
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in model.parameters():  # world average (DeepSpeed's reduction), in place
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(par.world_size)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    base = rss_gib()
    timing = time_steps(step, steps)
    res = {"rank": par.rank, **timing, "peak_gib": peak_rss_gib(), "base_gib": base}
    res["above_base_gib"] = res["peak_gib"] - base
    measured = attn_steps[1:]  # after the warm-up
    res["attn_pairs"] = _plan_pairs(batch, par)
    res["attn_s"] = statistics.median(w for w, _ in measured)
    res["attn_cpu_s"] = statistics.median(c for _, c in measured)
    if not distributed:
        return {"sp": 1, "context": context, "per_rank": [res]}
    allres = [None] * dist.get_world_size()
    dist.all_gather_object(allres, res)
    dist.destroy_process_group()
    if par.rank == 0:
        return {"sp": sp, "layout": layout, "world": par.world_size, "context": context, "per_rank": allres}
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(context: int, steps: int, sp: int, allocator: str, zero1: bool, world: int, chunk: int,
        layout: str = "zigzag") -> dict:
    from _bench_common import ALLOCATORS, last_json_line

    me = os.path.abspath(__file__)
    args = ["--child", "--contexts", str(context), "--steps", str(steps), "--sp", str(sp), "--chunk", str(chunk),
            "--layouts", layout]
    args += ["--zero1"] if zero1 else []
    env = dict(os.environ, **ALLOCATORS[allocator])
    nproc = world if zero1 else sp
    if nproc == 1:
        cmd = [sys.executable, me, *args]
    else:
        env["OMP_NUM_THREADS"] = "1"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
               "127.0.0.1", "--master_port", str(_free_port()), me, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"sp": sp, "context": context, "error": (proc.stderr or proc.stdout)[-800:]}
    out = last_json_line(proc.stdout)
    pr = out["per_rank"]
    out["peak_gib"] = max(r["peak_gib"] for r in pr)
    out["above_base_gib"] = max(r["above_base_gib"] for r in pr)
    out["step_s"] = max(r["step_s"] for r in pr)
    out["min_step_s"] = max(r["min_step_s"] for r in pr)
    out["load_avg_1m"] = max(r["load_avg_1m"] for r in pr)
    out["attn"] = {k: [r[k] for r in pr] for k in ("attn_pairs", "attn_s", "attn_cpu_s")}
    if len(pr) > 1:
        out["attn_imbalance"] = {k: max(v) / max(min(v), 1e-12) for k, v in out["attn"].items()}
    return out


def _summary(context: int, layout: str, one: dict, two: dict) -> str:
    """One readable line per layout: per-rank attention pairs / time and the per-rank memory ratio."""
    a, a1 = two["attn"], one["attn"]
    ranks = " | ".join(f"rank {i}: {p / 1e6:.1f}M pairs, {w:.3f} s ({c:.3f} CPU s), {r['above_base_gib']:.3f} GiB"
                       for i, (p, w, c, r) in enumerate(zip(a["attn_pairs"], a["attn_s"], a["attn_cpu_s"],
                                                            two["per_rank"])))
    imb = two["attn_imbalance"]
    return (f"## {context} {layout}: SP=1 attention {a1['attn_pairs'][0] / 1e6:.1f}M pairs, {a1['attn_s'][0]:.3f} s; "
            f"SP=2 {ranks}; attention max/min rank: pairs {imb['attn_pairs']:.2f}, time {imb['attn_s']:.2f} "
            f"(CPU {imb['attn_cpu_s']:.2f}); per-rank peak mem SP2/SP1 {two['peak_gib'] / one['peak_gib']:.2f} "
            f"(above base {two['above_base_gib'] / one['above_base_gib']:.2f})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one 2K context, two measured steps")
    ap.add_argument("--contexts", type=int, nargs="+", default=[4096, 8192, 16384])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--sp", type=int, default=2)
    ap.add_argument("--allocator", choices=("default", "tuned", "lean"), default="default",
                    help="glibc allocator setting of both sides")
    ap.add_argument("--zero1", action="store_true",
                    help="both sides: world of --sp ranks, AdamW state sharded over it (SP=1 side = DP)")
    ap.add_argument("--chunk", type=int, default=CHUNK,
                    help=f"LM-head chunk (tokens; default {CHUNK} as in shared_context.py; the align stage uses 1024: "
                    "then the 768 judgement tokens fit one chunk and the forward keeps their softmax for the backward)")
    ap.add_argument("--layouts", nargs="+", choices=("zigzag", "contiguous"), default=["zigzag", "contiguous"],
                    help="SP row layouts to run on the SP side (parallel.sp_layout)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if args.child:
        res = child(args.contexts[0], args.steps, args.sp, args.zero1, args.chunk, args.layouts[0])
        if res is not None:
            print(json.dumps(res), flush=True)
        return
    contexts, steps = ([2048], 2) if args.quick else (args.contexts, args.steps)
    rows = []
    for c in contexts:
        one = run(c, steps, 1, args.allocator, args.zero1, args.sp, args.chunk)
        print(f"# {c}: sp1 {one}", file=sys.stderr, flush=True)
        row = {"context": c, "sp1": one}
        for layout in args.layouts:
            two = run(c, steps, args.sp, args.allocator, args.zero1, args.sp, args.chunk, layout)
            print(f"# {c}: sp{args.sp} {layout} {two}", file=sys.stderr, flush=True)
            row[f"sp{args.sp}_{layout}"] = two
            if "peak_gib" in one and "peak_gib" in two:
                row[f"ratio_{layout}"] = {
                    "per_rank_peak_mem": two["peak_gib"] / one["peak_gib"],
                    "per_rank_mem_above_base": two["above_base_gib"] / one["above_base_gib"],
                    "step_time": two["step_s"] / one["step_s"],
                    "min_step_time": two["min_step_s"] / one["min_step_s"],
                }
                print(_summary(c, layout, one, two), file=sys.stderr, flush=True)
        rows.append(row)
    setup = (f"ZeRO-1 on both sides: world of {args.sp}, AdamW state sharded over it; SP=1 side = DP={args.sp}"
             if args.zero1 else "no ZeRO: every rank holds the full AdamW state and gradients")
    print(json.dumps({"benchmark": "sequence_parallel", "sp": args.sp, "steps": steps, "allocator": args.allocator,
                      "lm_head_chunk": args.chunk, "layouts": args.layouts,
                      "optimizer": setup, "rows": rows}))


if __name__ == "__main__":
    main()
