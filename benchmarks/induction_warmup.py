"""Induction warm-up of the tiny judge base: builds the shipped ``tiny:judge-warm`` (docs/reward_quality.md, fifth
and sixth rounds).

Why: the quickstart's tiny random-init judge never learns to find a code 4K tokens back (retrieval). This script
trains ``tiny:judge`` as a plain causal LM on a copy task, with the loss only on a repeated span of random tokens,
so every label needs the earlier copy (an induction head). The length curriculum matters:

  stage      tokens   batch   steps               repeat-token accuracy
  64         64       32      until 60%, ≤4,000   64: 67% at step 2,200 (from random init nothing forms at 256 tokens)
  256        256      8       until 90%, ≤3,000   256: 78%, 1K: 30% (3,000 steps)
  1024       1,024    4       until 80%, ≤1,000   256: 68%, 1K: 67%, 4K: 8% (1,000 steps)

(the shipped base, built 2026-12-07 in ~23 min on 2 threads; the one-thread prototype of the fifth round reached
68% / 92% / 84% with 1,500 / 1,000 / 400 fixed steps: induction forms in a sudden phase change whose step depends on
the float summation order, so the stages stop at a target accuracy, not a step count).

Then ``longrm disrm --model.name_or_path OUT/1024`` trains a DisRM on that base, like any HF folder. The quickstart
starts from the result, shipped as longrm/assets/tiny-judge-warm (3 MB; the build is over the quickstart's budget):

    OMP_NUM_THREADS=2 python benchmarks/induction_warmup.py --out out/warm --publish longrm/assets/tiny-judge-warm
    python benchmarks/induction_warmup.py --out out/warm --stages 64:32:1500

Prints one JSON line per 100 steps and, per stage, the accuracy at 256 / 1K / 4K tokens; the last line is one JSON
object with every stage's numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from data_synthesis.synthetic import distractor_documents
from longrm.config import atomic_dir
from longrm.models import resolve_model_path


class CopyTask:
    """Sequences of distractor text holding one span of random tokens twice; labels on the second copy only
    (from its second token: the first is not predictable)."""

    def __init__(self, tok, span: tuple[int, int] = (16, 48), code_share: float = 0.3, seed: int = 5000):
        self.tok, self.span, self.code_share = tok, span, code_share
        self.stream: list[int] = []
        for d in distractor_documents(1500, seed=seed):
            self.stream += tok(d + "\n\n", add_special_tokens=False)["input_ids"]
        ids = (tok.convert_tokens_to_ids(str(i)) for i in range(100, 1000))
        self.codes = [i for i in ids if i is not None and i != tok.unk_token_id]
        self.first_word = 300  # below: special and byte tokens

    def sample(self, rng: random.Random, T: int, span: tuple[int, int] | None = None) -> tuple[list[int], list[int]]:
        lo, hi = span or self.span
        s = rng.randrange(0, len(self.stream) - T - 1)
        ids, lab = list(self.stream[s:s + T]), [-100] * T
        R = rng.randint(lo, min(hi, (T - 2) // 2 - 1))
        rep = [rng.choice(self.codes) if rng.random() < self.code_share
               else rng.randrange(self.first_word, len(self.tok)) for _ in range(R)]
        a = rng.randrange(0, max(1, min(T // 4, T - 2 * R - 1)))
        b = rng.randrange(a + R + 1, T - R + 1)
        ids[a:a + R] = rep
        ids[b:b + R] = rep
        lab[b + 1:b + R] = rep[1:]
        return ids, lab

    def batch(self, rng: random.Random, T: int, n: int, span=None) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*(self.sample(rng, T, span) for _ in range(n)))
        return torch.tensor(xs), torch.tensor(ys)


@torch.no_grad()
def repeat_accuracy(model, task: CopyTask, T: int, n: int = 8, seed: int = 123, span=None) -> float:
    """Share of second-copy tokens the model predicts (argmax) — the induction read-out."""
    was = model.training
    model.eval()
    x, y = task.batch(random.Random(seed), T, n, span)
    pred = model(x).logits[:, :-1].argmax(-1)
    yy = y[:, 1:]
    m = yy != -100
    model.train(was)
    return (pred[m] == yy[m]).float().mean().item()


def train_stage(model, task: CopyTask, T: int, batch: int, steps: int, lr: float, span=None, seed: int = 0,
                until: float | None = None) -> int:
    """Train ``steps`` steps (cosine schedule), or stop at the first 100-step check whose repeat accuracy reaches
    ``until``: induction forms as a sudden phase change whose step varies with the thread count (float summation
    order), so a fixed step count is fragile. Returns the steps taken."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warm = 50
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    rng, t0 = random.Random(seed), time.time()
    model.train()
    for step in range(1, steps + 1):
        x, y = task.batch(rng, T, batch, span)
        loss = model(input_ids=x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 100 == 0:
            acc = repeat_accuracy(model, task, T, span=span)
            print(json.dumps({"T": T, "step": step, "loss": round(loss.item(), 3), f"acc{T}": round(acc, 3),
                              "s": round(time.time() - t0)}), flush=True)
            if until is not None and acc >= until:
                return step
    return steps


def model_card(args, summary: dict) -> str:
    rows = "\n".join(f"| {spec} | {a['steps']} | {a['own']:.0%} | {a[256]:.0%} | {a[1024]:.0%} | {a[4096]:.0%} |"
                     for spec, a in summary.items())
    return f"""# tiny:judge-warm

`tiny:judge` (3-layer Llama-shaped, 64 wide, tied embeddings, the tokenizer `longrm.models` trains locally) after a
copy-task warm-up: a plain causal LM trained on distractor text holding one span of random tokens twice, with the
loss only on the second copy, so every label needs the earlier copy (induction heads). It never saw a judging
prompt, a question, a response or a judgement: the warm-up gives the base *retrieval*, the quickstart's stages
teach it to judge. Shipped because the build is over the quickstart's budget; `tiny:judge-warm` loads this folder.

Built with `OMP_NUM_THREADS={torch.get_num_threads()} python benchmarks/induction_warmup.py --out {args.out} --stages
{' '.join(st[0] for st in args.stages)} --lr {args.lr} --publish {args.publish}` (torch {torch.__version__}; the thread
count changes float summation order, hence the step at which induction forms). Repeat-token accuracy (argmax on the
second copy) after each stage, at the stage's own length and at 256 / 1K / 4K tokens:

| stage tokens:batch:max steps[:stop at] | steps | at its length (the stop test's batch) | 256 | 1K | 4K |
|---|---:|---:|---:|---:|---:|
{rows}

Why and what it buys: docs/reward_quality.md ("Fifth round", "Sixth round").
"""


def stage_spec(spec: str) -> tuple[str, int, int, int, float | None]:
    """``tokens:batch:max_steps[:until]`` → (spec, tokens, batch, steps, until), checked before any training."""
    fields = spec.split(":")
    try:
        if len(fields) not in (3, 4):
            raise ValueError
        T, batch, steps = (int(v) for v in fields[:3])
        until = float(fields[3]) if len(fields) == 4 else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"stage {spec!r}: expected tokens:batch:max_steps[:until]") from None
    if min(T, batch, steps) < 1 or T < 8:
        raise argparse.ArgumentTypeError(f"stage {spec!r}: tokens ≥ 8, batch and steps ≥ 1")
    if until is not None and not 0 < until <= 1:
        raise argparse.ArgumentTypeError(f"stage {spec!r}: until is an accuracy in (0, 1], got {until}")
    return spec, T, batch, steps, until


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder; each stage is saved to OUT/<tokens>")
    ap.add_argument("--init", default="tiny:judge", help="the base to start from (built-in name or HF folder)")
    ap.add_argument("--stages", nargs="+", type=stage_spec,
                    default=[stage_spec(s) for s in ("64:32:4000:0.6", "256:8:3000:0.9", "1024:4:1000:0.8")],
                    help="tokens:batch:steps[:until] per stage, in order; until = stop once the repeat accuracy "
                    "at the stage's length reaches it (checked every 100 steps)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--publish", default=None, help="also save the last stage here with a model card (temp folder, "
                    "then swapped in); longrm/assets/tiny-judge-warm is what ``tiny:judge-warm`` loads")
    args = ap.parse_args()

    torch.manual_seed(0)
    src = resolve_model_path(args.init)
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    task = CopyTask(tok)
    summary = {}
    for spec, T, batch, steps, until in args.stages:
        span = (8, 20) if T <= 64 else None
        # the data seed is the stage's length, so a run resumed from OUT/<tokens> with --init draws the same data
        taken = train_stage(model, task, T, batch, steps, args.lr, span=span, seed=T, until=until)
        acc = {L: round(repeat_accuracy(model, task, L, n=8 if L <= 1024 else 4), 3) for L in (256, 1024, 4096)}
        own = round(repeat_accuracy(model, task, T, span=span), 3)  # at the stage's own length (the stop test)
        summary[spec] = {**acc, "steps": taken, "own": own}
        out = Path(args.out) / str(T)
        model.save_pretrained(str(out))
        tok.save_pretrained(str(out))
        print(json.dumps({"stage": spec, "saved": str(out), "repeat_accuracy": acc}), flush=True)
    if args.publish:
        with atomic_dir(args.publish) as tmp:  # written beside it, then swapped in
            model.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))
            (tmp / "README.md").write_text(model_card(args, summary))
            for f in tmp.iterdir():  # safetensors writes 0600; a shipped folder is read by everyone
                f.chmod(0o644)
        print(json.dumps({"published": args.publish}), flush=True)
    print(json.dumps({"stages": summary}))


if __name__ == "__main__":
    main()
