"""Benchmark: assembling + tokenizing long synthesis examples (judging excluded).

Builds pointwise judge prompts of a target bucket (default 32K tokens) from the built-in synthetic tasks and
distractor pool, exactly as ``longrm synthesize`` does (:class:`data_synthesis.tasks.TaskBuilder`), in both
token-count modes: ``incremental`` (the default: cached piece counts, with an exact chat-template count of
every 50th prompt as a check) and ``exact`` (one chat-template count of every final prompt, ~70 ms at 32K).  The distractor pool is tokenized once, before the clock starts (reported separately).
Goal: >= 1,000 examples/min on the 2-core machine.  The last line printed is one JSON object.

    python benchmarks/synthesis.py [--tokenizer tiny:qwen2|smollm2|PATH] [--bucket 32k] [--examples 200]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default="tiny:qwen2")
    ap.add_argument("--bucket", default="32k", choices=["4k", "8k", "16k", "32k", "64k", "128k"])
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--pool-size", type=int, default=2000)
    ap.add_argument("--modes", default="incremental,exact")
    args = ap.parse_args(argv)

    from data_synthesis.config import SynthesizeConfig
    from data_synthesis.expand import DistractorPool, Expander
    from data_synthesis.sources import load_source
    from data_synthesis.synthetic import distractor_documents
    from data_synthesis.tasks import TaskBuilder, prompt_counter
    from longrm.config import ModelConfig
    from longrm.models import load_tokenizer

    tok = load_tokenizer(ModelConfig(name_or_path=args.tokenizer))
    t0 = time.perf_counter()
    pool = DistractorPool(distractor_documents(args.pool_size), tok)
    pool_s = time.perf_counter() - t0
    result = {"benchmark": "synthesis_assembly", "tokenizer": args.tokenizer, "bucket": args.bucket,
              "examples": args.examples, "pool_docs": len(pool), "pool_tokens": pool.total_tokens,
              "pool_build_s": round(pool_s, 2), "cpu_count": os.cpu_count(), "goal_examples_per_min": 1000}
    check = prompt_counter(tok)
    for mode in args.modes.split(","):
        cfg = SynthesizeConfig.model_validate({
            "source": {"synthetic": {"num_examples": args.examples}},
            "expand": {"buckets": [args.bucket], "count": mode},
            "tasks": {"max_pointwise_per_example": 1}})
        builder = TaskBuilder(cfg, tok, Expander(pool))
        examples = list(load_source(cfg.source))  # generating the short tasks is not part of the clock
        t0 = time.perf_counter()
        tasks = []
        for ex in examples:
            tasks.extend(builder.build(ex)[0])
        secs = time.perf_counter() - t0
        errs = [abs(check(t.prompt) - t.meta["target_tokens"]) / t.meta["target_tokens"] for t in tasks[:20]]
        result[f"{mode}_examples_per_min"] = round(len(tasks) / secs * 60, 1)
        result[f"{mode}_max_rel_len_err"] = round(max(errs), 5)
        result[f"{mode}_mean_prompt_tokens"] = round(sum(t.meta["prompt_tokens"] for t in tasks) / len(tasks))
    # headline: the pipeline's default mode (incremental counts, an exact check every 50th prompt)
    result["examples_per_min"] = result.get("incremental_examples_per_min", result.get("exact_examples_per_min"))
    result["meets_goal"] = result["examples_per_min"] >= 1000
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
