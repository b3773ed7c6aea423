"""Benchmark: shared context and judgement-only log-probs vs the usual forms (issue 3).

Tiny Qwen2-shaped model (hidden 128, 2 layers, vocab 32000, fp32); 1 chosen + 2 rejects of 256 tokens;
contexts of 4K / 8K / 16K tokens; one LOGO training step (forward + backward + clip + AdamW). Sides, each run
in its own subprocess (same environment) so peak memories do not mix:

* ``shared``   — the core: ``[context | j_0 | j_1 | j_2]`` in one row, log-probs on judgement tokens only;
* ``separate`` — each judgement on its own copy of the context (3 packed docs), judgement-only log-probs;
* ``stacked``  — three rows ``[context | j_k]`` as a batch, plain sdpa, full-vocabulary logits (most DPO code).

Step time is the median of ``--steps`` steps after one warm-up; memory is the peak RSS of the process (also
reported above the RSS measured after model + optimizer construction). The stacked side is skipped where its
projected memory exceeds what the machine has free (it needs > 24 GiB at 16K). Prints one JSON object last.

    python benchmarks/shared_context.py [--quick] [--tuned-allocator] [--contexts 4096 8192 16384] [--threads N]
                                        [--sides shared separate stacked]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SIDES = ("shared", "separate", "stacked")


def child(side: str, context: int, steps: int) -> dict:
    import torch

    from _bench_common import (
        CHUNK, build_model, logo_from_means, make_data, optimizer_step, peak_rss_gib, rss_gib, time_steps,
    )
    from longrm.data.layout import pack, shared_context_example
    from longrm.modeling import branch_logprobs, prepare_model
    from longrm.parallel.context import ParallelContext

    model = build_model()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    ctx, js = make_data(context)
    par = ParallelContext.single()
    if side == "stacked":
        ids = torch.tensor([ctx + j for j in js])
        labels = ids.clone()
        labels[:, : len(ctx)] = -100  # loss on judgement tokens only, as DPO code masks the prompt

        def loss_fn():  # the classic get_batch_logps: log-softmax over every position, then gather and mask
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1]  # [3, L-1, V] full vocabulary
            lab = labels[:, 1:].clone()
            mask = lab != -100
            lab[~mask] = 0
            lp = torch.gather(logits.log_softmax(-1), 2, lab[..., None])[..., 0]
            return logo_from_means((lp * mask).sum(1) / mask.sum(1))
    else:
        prepare_model(model, par, "torch")
        exs = [shared_context_example(ctx, js)] if side == "shared" else [shared_context_example(ctx, [j]) for j in js]
        batch = pack(exs)

        def loss_fn():
            lp, cnt = branch_logprobs(model, batch, par, chunk_size=CHUNK)
            return logo_from_means(lp / cnt)

    base = rss_gib()
    timing = time_steps(lambda: optimizer_step(model, opt, loss_fn()), steps)
    peak = peak_rss_gib()
    return {"side": side, "context": context, **timing, "peak_gib": peak, "base_gib": base,
            "above_base_gib": peak - base, "threads": torch.get_num_threads()}


def projected_stacked_gib(context: int) -> float:
    # full-vocab fp32 logits + log-softmax + their grads for 3 rows (~4 copies), plus the model
    return 4 * 3 * (context + 256) * 32000 * 4 / 2**30 + 1.0


def run_side(side: str, context: int, steps: int, tuned: bool, threads: int = 0) -> dict:
    from _bench_common import TUNED_ALLOCATOR, last_json_line

    env = dict(os.environ)
    if tuned:
        env.update(TUNED_ALLOCATOR)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", side, "--contexts", str(context), "--steps", str(steps)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"side": side, "context": context, "error": (proc.stderr or proc.stdout)[-800:]}
    return last_json_line(proc.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one 2K context, two measured steps")
    ap.add_argument("--tuned-allocator", action="store_true", help="run every side with the tuned glibc allocator")
    ap.add_argument("--contexts", type=int, nargs="+", default=[4096, 8192, 16384])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of every side (0 = torch's default)")
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES), help="sides to run (shared always)")
    ap.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if args.child:
        print(json.dumps(child(args.child, args.contexts[0], args.steps)), flush=True)
        return
    from _bench_common import available_gib

    contexts, steps = ([2048], 2) if args.quick else (args.contexts, args.steps)
    rows = []
    for c in contexts:
        row = {"context": c}
        for side in SIDES:
            if side != "shared" and side not in args.sides:
                continue
            if side == "stacked" and projected_stacked_gib(c) > available_gib() - 2.0:
                row[side] = {"skipped": f"projected {projected_stacked_gib(c):.1f} GiB > free memory"}
            else:
                row[side] = run_side(side, c, steps, args.tuned_allocator, args.threads)
            print(f"# {c} {side}: {row[side]}", file=sys.stderr, flush=True)
        s = row["shared"]
        for other in ("separate", "stacked"):
            o = row.get(other, {})
            if "step_s" in s and "step_s" in o:
                row[f"shared_vs_{other}"] = {
                    "time": s["step_s"] / o["step_s"],
                    "min_time": s["min_step_s"] / o["min_step_s"],
                    "cpu_time": s["cpu_s"] / o["cpu_s"],
                    "peak_mem": s["peak_gib"] / o["peak_gib"],
                    "mem_above_base": s["above_base_gib"] / o["above_base_gib"],
                }
        rows.append(row)
    print(json.dumps({"benchmark": "shared_context", "allocator": "tuned" if args.tuned_allocator else "glibc default",
                      "threads": args.threads or "default", "steps": steps, "rows": rows}))


if __name__ == "__main__":
    main()
