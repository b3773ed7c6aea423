"""Benchmark: does each scorer of ``longrm cotrain`` make a tiny policy better on HELD-OUT arithmetic prompts
(issue 11 item 6; REFERENCE §2–§5)?  The rule-only run is the baseline.

Every run starts from the same warm-started policy, with the same seed, the same GRPO budget (steps, prompts per
step, G, completion length, learning rate) and the same training prompts; only ``scorer.*`` differs.  Each run goes
through ``longrm cotrain``'s code path in process (:func:`longrm.cotrain.run.run_cotrain`, with the per-step recorder
of ``cooper_hacking.py`` for the RM's pair accuracy).

- **Prompts.**  Training (warm start and GRPO): :data:`TRAIN` = 60 of the 100 sums ``a + b`` with a, b in 0..9
  (seed 0).  Held out: the *other* 40 sums, taken from :data:`HELDOUT_POOL` (seed 1) after removing every training
  question; they are seen neither in the warm start nor in GRPO (disjointness is asserted).  The same
  ``What is A + B? Answer with the number only.`` template.
- **Policy.**  ``tiny:qwen2`` (hidden 64, 2 layers) after a supervised warm start on the training sums
  (:func:`longrm.cotrain.warmstart.warm_start_policy`), so that its sampled answers are right part of the time.
- **Scorers** (:data:`SCORERS`): ``rule`` (the verifier, exact match: the baseline); ``longrm`` (a discriminative
  VerifyRM, σ(s) of Cooper's verify text, static); ``cooper`` (the same RM updated online with Cooper's loss over
  (right, wrong) rollouts of a prompt); ``hero`` (HERO over the same static RM's raw score + the verifier);
  ``rubric`` (two weighted criteria checked by a scripted judge behind a local OpenAI-compatible server);
  ``spark`` (the verifier's reward + pointwise / pairwise judge tasks injected into later batches).
- **The VerifyRM** is pre-trained once by ``longrm verifyrm`` (subprocess) on rows of the 60 *training*
  questions, labelled by the rule verifier and the scripted lenient judge of ``cooper_hacking.py`` (agreements
  kept), with **no** length cue (long worked answers equally likely right or wrong).
- **The rubric judge** (:func:`rubric_verdicts`) is scripted: it reads ``A + B`` from the prompt and answers the
  rubric JSON.  c1 (weight 3) "states the correct sum": yes when the sum is *among* the response's numbers (a
  lenient judge); c2 (weight 1) "only a number": yes when the response is one integer.  No LLM on this 2-core CPU
  machine can judge arithmetic (docs/cotrain.md, VerifyRM section).
- **Evaluation** (:func:`evaluate`), the warm start ("before", once: the same for every scorer) and every final
  policy ("after"), on the held-out prompts and on the training prompts: greedy accuracy, and the accuracy of
  ``--samples`` answers per prompt sampled at temperature 1 with a fixed torch seed; correctness = the rule
  verifier (exact match), completions of at most ``--max-len`` tokens, the rollouts' settings.

Output: a table, ``<output-dir>/cotrain_learning.json`` (settings, prompt lists, per-scorer evaluation with the
held-out greedy completions, per-step series with sample rollouts) and, as the last stdout line, one JSON object
(per scorer: before / after accuracies, steps, the wall seconds of its co-training run as measured when it ran;
``wall_seconds`` at the top level: this invocation).  A finished phase (RM, warm start, a scorer's run, an
evaluation) is reused on a rerun; the settings must then be the same (delete the folder to start over).

    python benchmarks/cotrain_learning.py [--output-dir DIR] [--steps 150] [--smoke] [--scorers rule,longrm,...]

``--smoke`` (the CI test): 20 RM steps, 30 warm-start steps, 3 GRPO steps per scorer (2 prompts × G = 4), 8
held-out and 8 training prompts with 2 samples each; it checks the wiring, not the numbers.
Measured numbers and what they show: docs/cotrain.md, "Learning results".
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from _bench_common import scripted_chat_server  # noqa: E402
from cooper_hacking import _mean, _recorder, metric_rows, pretrain_rm  # noqa: E402

TRAIN = "arithmetic:n=60,seed=0,max=9,ops=+"  # 60 of the 100 sums a + b, a, b in 0..9: warm start and GRPO
HELDOUT_POOL = "arithmetic:n=100,seed=1,max=9,ops=+"  # all 100 sums (another order); minus TRAIN = the held-out set
RM_TRAIN = "arithmetic-verify:n=60,seed=0,max=9,ops=+,k=16,long_right=0.2,long_wrong=0.2"  # the TRAIN questions
RM_EVAL = "arithmetic-verify:n=100,seed=1,max=9,ops=+,k=2,long_right=0.2,long_wrong=0.2"
SCORERS = ("rule", "longrm", "cooper", "hero", "rubric", "spark")
RUBRIC = [{"criterion": "The response states the correct value of the sum.", "weight": 3},
          {"criterion": "The response is only a number, with no other text.", "weight": 1}]


# -- the scripted rubric judge -------------------------------------------------------------------------------------

def rubric_verdicts(user_message: str) -> str:
    """The rubric judge's JSON answer to :func:`longrm.scorers.rubric.rubric_messages`' user message.

    A criterion mentioning "correct" is yes when ``A op B`` of the prompt is among the response's numbers
    (lenient); one mentioning "only a number" is yes when the response is a single integer; others are no."""
    q = re.search(r"What is (\d+) ([-+*]) (\d+)\?", user_message)
    resp = re.search(r"\[Response\]\n(.*?)\n\[End of Response\]", user_message, re.S)
    crit = re.findall(r"^c(\d+) \(weight [^)]*\): (.*)$", user_message, re.M)
    if not q or not resp or not crit:
        return "I cannot grade this."
    a, op, b = int(q.group(1)), q.group(2), int(q.group(3))
    value = str(a + b if op == "+" else a - b if op == "-" else a * b)
    text = resp.group(1).strip()
    out = {}
    for cid, c in crit:
        if "correct" in c:
            ok = value in re.findall(r"-?\d+", text)
        elif "only a number" in c:
            ok = re.fullmatch(r"-?\d+", text) is not None
        else:
            ok = False
        out[f"c{cid}"] = "yes" if ok else "no"
    return json.dumps(out)


def rubric_server():
    """The scripted rubric judge on 127.0.0.1 (a context manager yielding its ``…/v1`` base URL)."""
    return scripted_chat_server(lambda messages: rubric_verdicts(messages[-1]["content"]))


# -- prompts and evaluation ----------------------------------------------------------------------------------------

def question(row: dict) -> str:
    return row["prompt"][-1]["content"]


def prompt_sets(n_heldout: int | None = None, n_train_eval: int | None = None) -> tuple[list, list, list]:
    """(GRPO training rows, held-out eval rows, training-prompt eval rows); held-out ∩ training = ∅ (asserted)."""
    from longrm.cotrain.prompts import load_prompt_rows

    train = load_prompt_rows(TRAIN)
    seen = {question(r) for r in train}
    heldout = [r for r in load_prompt_rows(HELDOUT_POOL) if question(r) not in seen][:n_heldout]
    assert heldout and not seen & {question(r) for r in heldout}
    return train, heldout, train[:n_train_eval]


def evaluate(policy: Path, rows: list[dict], samples: int, seed: int, max_len: int) -> dict:
    """Greedy accuracy and the accuracy of ``samples`` answers per prompt at temperature 1 (torch seed ``seed``),
    scored by the rule verifier (exact match); plus the greedy completions."""
    import torch

    from longrm.config import ModelConfig
    from longrm.scorers.rule import RuleScorer
    from longrm.scorers.sampling import LocalSampler

    gen = LocalSampler(ModelConfig(name_or_path=str(policy), dtype="float32", gradient_checkpointing=False),
                       max_new_tokens=max_len, batch_size=64, device="cpu")
    rule = RuleScorer("exact")
    greedy = gen.generate([r["prompt"] for r in rows], temperature=0.0)
    torch.manual_seed(seed)
    sampled = gen.generate([r["prompt"] for r in rows for _ in range(samples)], temperature=1.0)
    ok_s = [rule.check(t, r["answer"]) for t, r in zip(sampled, [r for r in rows for _ in range(samples)])]
    return {"greedy": sum(rule.check(t, r["answer"]) for t, r in zip(greedy, rows)) / len(rows),
            "sampled": sum(ok_s) / len(ok_s), "prompts": len(rows), "samples_per_prompt": samples,
            "greedy_completions": greedy}


def cached_eval(path: Path, policy: Path, sets: dict[str, list], a) -> dict:
    """:func:`evaluate` on every prompt set, written to ``path`` and reused on a rerun."""
    if path.exists():
        return json.loads(path.read_text())
    res = {name: evaluate(policy, rows, a.samples, a.seed, a.max_len) for name, rows in sets.items()}
    path.write_text(json.dumps(res))
    return res


# -- one co-training run per scorer ----------------------------------------------------------------------------------

EXTRA_METRICS = {"rm_pairs": "rm/pairs", "hero_weight": "hero/weight_mean", "parse_failures": "scorer/parse_failures",
                 "tasks_injected_groups": "tasks/injected_groups", "tasks_emitted": "tasks/emitted"}


def overrides(scorer: str, policy: Path, rm: Path, judge_url: str | None, out: Path, a) -> dict:
    """The command-line overrides of ``configs/cotrain_tiny.yaml`` for ``scorer``'s run: a shared budget, then the
    scorer's own keys."""
    ov = {"model.name_or_path": policy, "scorer.rule.mode": "exact",
          "grpo.num_generations": a.group, "grpo.prompts_per_step": a.prompts, "grpo.max_completion_length": a.max_len,
          "grpo.beta": 0, "grpo.temperature": 1.0, "train.lr": a.policy_lr, "train.max_steps": a.steps,
          "train.seed": a.seed, "train.output_dir": out, "train.log_every": 1, "train.save_every": 0,
          "data.path": TRAIN}
    rm_keys = {"scorer.longrm.model.name_or_path": rm, "scorer.longrm.mode": "discriminative",
               "scorer.longrm.input_format": "verify", "scorer.longrm.sigmoid": "true", "scorer.longrm.update": "false",
               "scorer.longrm.negatives": "group", "scorer.longrm.batch_size": 64, "scorer.longrm.device": "cpu"}
    if scorer in ("rule", "spark"):
        ov["scorer.name"] = scorer  # spark: p_pointwise 0.3, inject_fraction 0.5, no reflection (the defaults)
    elif scorer in ("longrm", "cooper"):
        ov.update(rm_keys, **{"scorer.name": "longrm"})
        if scorer == "cooper":
            ov.update({"scorer.longrm.update": "true", "scorer.longrm.update_lr": a.rm_lr})
    elif scorer == "hero":  # HERO on the raw RM score (its definition), the RM kept static
        ov.update(rm_keys, **{"scorer.name": "hero", "scorer.longrm.sigmoid": "false"})
    elif scorer == "rubric":
        ov.update({"scorer.name": "rubric", "scorer.rubric.backend": "server", "scorer.rubric.server.base_url": judge_url,
                   "scorer.rubric.server.model": "scripted-rubric-judge", "scorer.rubric.criteria": json.dumps(RUBRIC),
                   "scorer.rubric.max_new_tokens": 64, "scorer.rubric.temperature": 0})
    else:
        raise ValueError(f"unknown scorer {scorer!r}; choose from {', '.join(SCORERS)}")
    return ov


def cotrain_run(scorer: str, policy: Path, rm: Path, out: Path, a) -> dict:
    """``scorer``'s co-training run (in process); returns ``{"steps": rows, "wall_seconds"}`` (``run.json``, reused)."""
    done = out / "run.json"
    if done.exists():
        return json.loads(done.read_text())
    from longrm.config import load_config
    from longrm.cotrain.run import CotrainConfig, run_cotrain

    shutil.rmtree(out, ignore_errors=True)  # an interrupted run restarts
    t0 = time.time()
    with rubric_server() as url:
        ov = overrides(scorer, policy, rm, url, out, a)
        args = [x for k, v in ov.items() for x in (f"--{k}", str(v))]
        cfg = load_config(CotrainConfig, ROOT / "configs" / "cotrain_tiny.yaml", args)
        tr = run_cotrain(cfg, trainer_cls=_recorder())
    res = {"scorer": scorer, "wall_seconds": round(time.time() - t0, 1),
           "steps": metric_rows(out / "metrics.jsonl", tr.samples, EXTRA_METRICS)}
    done.write_text(json.dumps(res))
    return res


# -- summary -------------------------------------------------------------------------------------------------------

def series_summary(rows: list[dict], window: int) -> dict:
    """First / last ``window`` steps' mean reward, rollout verifier accuracy and RM pair accuracy."""
    out = {}
    for k in ("reward", "verifier_accuracy", "pair_accuracy", "mean_length"):
        out[k] = {"first": _mean([r[k] for r in rows[:window]]), "last": _mean([r[k] for r in rows[-window:]])}
    return out


def _f(x, nd=3):
    return "  –  " if x is None else f"{x:.{nd}f}"


def table(result: dict) -> str:
    lines = ["scorer  | held-out greedy | held-out sampled | train-prompt sampled | rollout acc first→last | "
             "RM pair acc | wall s",
             "--------|-----------------|------------------|----------------------|------------------------|"
             "-------------|-------"]
    for name, r in result["scorers"].items():
        h, t, s = r["heldout"], r["train_prompts"], r["rollouts"]
        lines.append(f"{name:<7} | {_f(h['before']['greedy'])} → {_f(h['after']['greedy'])} | "
                     f"{_f(h['before']['sampled'])} → {_f(h['after']['sampled'])}  | "
                     f"{_f(t['before']['sampled'])} → {_f(t['after']['sampled'])}        | "
                     f"{_f(s['verifier_accuracy']['first'])} → {_f(s['verifier_accuracy']['last'])}          | "
                     f"{_f(s['pair_accuracy']['first'], 2)}→{_f(s['pair_accuracy']['last'], 2)} | {r['wall_seconds']:.0f}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", default=None, help="default: outputs/cotrain_learning[_smoke]")
    ap.add_argument("--smoke", action="store_true", help="a few steps of every phase (CI): the wiring, not the numbers")
    ap.add_argument("--scorers", default=",".join(SCORERS), help="comma-separated subset of " + ",".join(SCORERS))
    ap.add_argument("--steps", type=int, default=150, help="GRPO steps per scorer")
    ap.add_argument("--rm-steps", type=int, default=1500, help="VerifyRM pre-training steps (x 32 rows)")
    ap.add_argument("--warm-steps", type=int, default=100, help="policy warm-start steps")
    ap.add_argument("--policy-lr", type=float, default=3e-4)
    ap.add_argument("--rm-lr", type=float, default=1e-3, help="cooper: the online RM learning rate")
    ap.add_argument("--group", type=int, default=8, help="G: rollouts per prompt")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--max-len", type=int, default=8, help="max completion tokens (rollouts and evaluation)")
    ap.add_argument("--samples", type=int, default=8, help="sampled answers per prompt in the evaluation")
    ap.add_argument("--eval-prompts", type=int, default=None, help="evaluate on the first N held-out / training "
                    "prompts only (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.smoke:
        a.steps, a.rm_steps, a.warm_steps, a.group, a.prompts, a.samples, a.eval_prompts = 3, 20, 30, 4, 2, 2, 8
    scorers = [s for s in a.scorers.split(",") if s]
    if not scorers or set(scorers) - set(SCORERS):
        raise SystemExit(f"--scorers: choose from {', '.join(SCORERS)}")
    out = Path(a.output_dir or ROOT / "outputs" / ("cotrain_learning_smoke" if a.smoke else "cotrain_learning"))
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(a, k) for k in ("steps", "rm_steps", "warm_steps", "policy_lr", "rm_lr", "group", "prompts",
                                            "max_len", "samples", "eval_prompts", "seed")}
    settings.update(train_prompts=TRAIN, heldout_pool=HELDOUT_POOL, rm_train=RM_TRAIN, rm_eval=RM_EVAL, rubric=RUBRIC)
    saved = out / "settings.json"
    if saved.exists() and json.loads(saved.read_text()) != json.loads(json.dumps(settings)):
        raise SystemExit(f"{out} holds a run with other settings ({saved}); use another --output-dir or delete it")
    saved.write_text(json.dumps(settings, indent=1))
    os.environ.update(TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    t0 = time.time()
    from longrm.cotrain.warmstart import warm_start_policy
    from longrm.models import resolve_model_path

    train, heldout, train_eval = prompt_sets(a.eval_prompts, a.eval_prompts)
    sets = {"heldout": heldout, "train_prompts": train_eval}
    rm, rm_info = pretrain_rm(out / "verifyrm", a.rm_steps, dict(os.environ), RM_TRAIN, RM_EVAL,
                              ("--train.micro_batch_size", "32"))
    policy = warm_start_policy(resolve_model_path("tiny:qwen2"), out / "policy_warm", TRAIN, steps=a.warm_steps,
                               seed=a.seed)
    before = cached_eval(out / "policy_warm_eval.json", policy, sets, a)
    runs, full = {}, {}
    for s in scorers:
        run = cotrain_run(s, policy, rm, out / s, a)
        after = cached_eval(out / s / "eval.json", out / s / "final", sets, a)
        window = max(1, len(run["steps"]) // 5)
        runs[s] = {"steps": len(run["steps"]), "wall_seconds": run["wall_seconds"],
                   **{k: {"before": {m: before[k][m] for m in ("greedy", "sampled")},
                          "after": {m: after[k][m] for m in ("greedy", "sampled")}} for k in sets},
                   "rollouts": series_summary(run["steps"], window)}
        full[s] = {"series": run["steps"], "greedy_completions_heldout": after["heldout"]["greedy_completions"]}
    result = {"benchmark": "cotrain_learning", "smoke": a.smoke, "output_dir": str(out), "settings": settings,
              "prompts": {"train": len(train), "heldout": len(heldout), "train_eval": len(train_eval)},
              "rm_pretraining": rm_info, "before": {k: {m: before[k][m] for m in ("greedy", "sampled")} for k in sets},
              "scorers": runs, "wall_seconds": round(time.time() - t0, 1)}
    print(table(result), flush=True)
    detail = {**result, "prompt_lists": {"train": [question(r) for r in train],
                                         "heldout": [question(r) for r in heldout],
                                         "train_eval": [question(r) for r in train_eval]},
              "before_greedy_completions_heldout": before["heldout"]["greedy_completions"], "runs": full}
    (out / "cotrain_learning.json").write_text(json.dumps(detail, indent=1))
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
