"""Our ``align`` step vs TRL's DPOTrainer: same tiny model, same examples, same loss, same machine.

    python benchmarks/vs_trl.py [--contexts 16384] [--steps 4] [--envs default,tuned] [--sides trl,dpo,logo2]

Model: random-init Qwen2 (hidden 128, intermediate 512, 2 layers, 4 / 2 heads, vocab 32000, fp32, untied head),
the tokenizer of ``tiny:qwen2`` (ids < 32000) with its chat template.  Data: prompts of P tokens (random
words, the chat template around them), chosen and rejected judgements of 256 tokens (+ EOS on both sides).

Sides, each in its own subprocess under the same environment:
- ``trl``: ``DPOTrainer`` with the DPOConfig of ../shared/notes/trl-dpo-baseline.md (sigmoid, beta 0.1,
  reference log-probs precomputed in ``__init__``, batch 1, no gradient checkpointing, fp32, CPU);
- ``dpo``: ``longrm align --align.loss dpo`` (sigmoid, beta 0.1, reference log-probs computed once at step 0
  and cached), 1 chosen + 1 reject, DeepSpeed ZeRO-2, shared context, no gradient checkpointing;
- ``logo2``: ``longrm align --align.loss logo --align.num_rejects 2`` (1 chosen + 2 rejects).

Seconds per optimizer step: median of steps 2..N (step 1 is warm-up; reference precompute excluded on both
sides).  Peak memory: the child's ``ru_maxrss``.  ``default`` runs with glibc's defaults, ``tuned`` with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824``.  The last line printed
is one JSON object with every figure and the ratios (ours / TRL; goals: time <= 0.2x default, <= 0.3x tuned;
memory <= 0.35x).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

JUDGEMENT = 256
TUNED = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736", "MALLOC_TOP_PAD_": "1073741824"}
WORDS = ["the", "river", "city", "capital", "company", "founded", "located", "answer", "question", "evidence",
         "document", "year", "born", "which", "where", "when", "better", "not", "score", "analysis"]


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)


def build_assets(root: Path, context: int, n: int, rejects: int = 2) -> tuple[Path, Path]:
    """The model folder (model + tokenizer) and a jsonl of n examples with ~context-token prompts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from longrm.models import resolve_model_path

    model_dir = root / "model"
    if not (model_dir / "config.json").exists():
        tok = AutoTokenizer.from_pretrained(resolve_model_path("tiny:qwen2"))
        cfg = Qwen2Config(vocab_size=32000, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=65536,
                          tie_word_embeddings=False, use_cache=False, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id, bos_token_id=None)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        model.save_pretrained(str(model_dir))
        tok.save_pretrained(str(model_dir))
    data = root / f"data_{context}.jsonl"
    if not data.exists():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(model_dir))
        rng = random.Random(0)

        def text(n_tokens: int) -> str:
            words = " ".join(rng.choice(WORDS) for _ in range(n_tokens + 64))
            ids = tok(words, add_special_tokens=False)["input_ids"][:n_tokens]
            return tok.decode(ids)

        rows = []
        for i in range(n):
            rows.append({"id": f"bench-{i}", "prompt": [{"role": "user", "content": text(context)}],
                         "chosen": text(JUDGEMENT - 1), "rejected": [text(JUDGEMENT - 1) for _ in range(rejects)]})
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model_dir, data


# ---------------------------------------------------------------------------------------------- children
def child_trl(model_dir: Path, data: Path, steps: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    ds = Dataset.from_list([{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
                             "rejected": [{"role": "assistant", "content": r["rejected"][0]}]} for r in rows])
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="sdpa")
    out = tempfile.mkdtemp(prefix="trl-bench-")
    args = DPOConfig(output_dir=out, loss_type=["sigmoid"], beta=0.1, precompute_ref_log_probs=True,
                     precompute_ref_batch_size=1, per_device_train_batch_size=1, gradient_accumulation_steps=1,
                     use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False, max_length=None,
                     max_steps=steps, learning_rate=1e-6, save_strategy="no", report_to="none",
                     dataloader_num_workers=0, seed=0, logging_steps=1)
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[Timer()])
    n_tokens = len(trainer.train_dataset[0]["prompt_ids"]) if "prompt_ids" in trainer.train_dataset.column_names else None
    trainer.train()
    return {"step_times": times, "prompt_tokens": n_tokens}


def child_ours(model_dir: Path, data: Path, steps: int, loss: str, rejects: int) -> dict:
    from longrm.cli import main

    out = Path(tempfile.mkdtemp(prefix=f"longrm-bench-{loss}-"))
    args = ["--model.name_or_path", str(model_dir), "--model.dtype", "float32", "--model.gradient_checkpointing",
            "false", "--parallel.kernel", "auto", "--train.output_dir", str(out), "--train.max_steps", str(steps),
            "--train.lr", "1e-6", "--train.warmup_ratio", "0", "--train.micro_batch_size", "1",
            "--train.zero_stage", "2", "--train.save_every", "0", "--train.seed", "0",
            "--data.path", str(data), "--data.max_length", "65536", "--align.loss", loss,
            "--align.num_rejects", str(rejects), "--align.logprob_chunk_size", "256"]
    if loss == "dpo":
        args += ["--align.beta", "0.1"]
    rc = main(["align", *args])
    if rc:
        raise SystemExit(rc)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] == "train"]
    return {"step_times": [r["step_time"] for r in rows], "tokens_per_s": rows[-1]["tokens_per_s"]}


def run_child(side: str, context: int, steps: int, env_name: str, root: Path) -> dict:
    env = dict(os.environ)
    for k in TUNED:
        env.pop(k, None)
    if env_name == "tuned":
        env.update(TUNED)
    env.update(TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--contexts", str(context), "--steps",
           str(steps), "--root", str(root)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if p.returncode != 0:
        return {"error": (p.stderr or p.stdout)[-2000:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", default="16384", help="comma-separated prompt lengths (tokens)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--envs", default="default,tuned")
    ap.add_argument("--sides", default="trl,dpo,logo2")
    ap.add_argument("--root", default=None, help="asset folder (default: a cache under ~/.cache/longrm/bench)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    root = Path(a.root or Path(os.environ.get("LONGRM_CACHE", Path.home() / ".cache" / "longrm")) / "bench-vs-trl")
    root.mkdir(parents=True, exist_ok=True)
    contexts = [int(c) for c in a.contexts.split(",")]

    if a.child:
        model_dir, data = build_assets(root, contexts[0], a.steps + 1)
        if a.child == "trl":
            res = child_trl(model_dir, data, a.steps)
        elif a.child == "dpo":
            res = child_ours(model_dir, data, a.steps, "dpo", 1)
        elif a.child == "logo2":
            res = child_ours(model_dir, data, a.steps, "logo", 2)
        else:
            raise SystemExit(f"unknown side {a.child}")
        t = res["step_times"]
        res.update(s_per_step=statistics.median(t[1:]) if len(t) > 1 else t[0], peak_gib=peak_gib())
        print(json.dumps(res))
        return

    for c in contexts:
        build_assets(root, c, a.steps + 1)
    results: dict = {"model": "Qwen2 hidden 128, 2 layers, vocab 32000, fp32", "judgement_tokens": JUDGEMENT,
                     "steps": a.steps, "cpus": os.cpu_count(), "runs": {}}
    for env_name in a.envs.split(","):
        for c in contexts:
            key = f"{env_name}/{c}"
            runs = {}
            for side in a.sides.split(","):
                r = run_child(side, c, a.steps, env_name, root)
                runs[side] = r
                print(f"{key} {side}: " + (f"{r['s_per_step']:.2f} s/step, {r['peak_gib']:.2f} GiB" if "error" not in r
                                            else "ERROR " + r["error"][-300:]), file=sys.stderr, flush=True)
            trl = runs.get("trl", {})
            for side in ("dpo", "logo2"):
                r = runs.get(side, {})
                if "s_per_step" in r and "s_per_step" in trl:
                    r["time_ratio_vs_trl"] = r["s_per_step"] / trl["s_per_step"]
                    r["memory_ratio_vs_trl"] = r["peak_gib"] / trl["peak_gib"]
            results["runs"][key] = runs
    summary = {}
    for key, runs in results["runs"].items():
        for side in ("dpo", "logo2"):
            if "time_ratio_vs_trl" in runs.get(side, {}):
                summary[f"{key}/{side}"] = {"time": round(runs[side]["time_ratio_vs_trl"], 3),
                                            "memory": round(runs[side]["memory_ratio_vs_trl"], 3)}
    results["ratios"] = summary
    print(json.dumps(results))


if __name__ == "__main__":
    main()
