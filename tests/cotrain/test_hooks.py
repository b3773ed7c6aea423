"""The scorer hooks inside a real GRPO run: HERO's advantages reaching the loss (against a hand computation) and the
Cooper-order RM update (score → advantages → RM update → policy loss → policy step)."""
import json

import pytest
import torch
from transformers import TrainerCallback

from cotrain_helpers import hand_hero_advantages as _hand_hero, overrides, recording_trainer
from longrm.config import load_config
from longrm.cotrain.run import CotrainConfig, run_cotrain


Record = recording_trainer()


@pytest.mark.slow
def test_hero_advantages_reach_the_loss(warm_policy, tmp_path):
    G = 4
    cfg = load_config(CotrainConfig, None, overrides(warm_policy, tmp_path / "hero", **{
        "scorer.name": "hero", "scorer.hero.alpha": 0.1, "scorer.hero.beta": 0.1, "grpo.num_generations": G,
        "grpo.prompts_per_step": 4, "train.max_steps": 4, "train.lr": "5e-4"}))
    torch.manual_seed(0)
    tr = run_cotrain(cfg, trainer_cls=Record)
    h = cfg.scorer.hero
    assert len(tr.gens) == len(tr.losses) == 4  # one generation batch per step (steps_per_generation = 1)
    bar, mixed, checked = None, 0, 0
    for gen, (keys, got) in zip(tr.gens, tr.losses):
        rm, rule = gen["scores"].tolist(), [int(x) for x in gen["rule"].tolist()]
        want, bar = _hand_hero(rm, rule, G, h.alpha, h.beta, h.eps, h.w_min, h.w_max, h.k, h.ema_momentum, bar)
        expected = {}
        for key, a in zip(gen["keys"], want):
            assert expected.get(key, a) == pytest.approx(a, abs=1e-5)  # identical rollouts get identical advantages
            expected[key] = a
        assert sorted(keys) == sorted(gen["keys"])  # the loss saw this batch (shuffled)
        for key, a in zip(keys, got.tolist()):
            assert a == pytest.approx(expected[key], abs=1e-4, rel=1e-4)
            checked += 1
        mixed += sum(0 < sum(rule[g:g + G]) < G for g in range(0, len(rule), G))
    assert checked == 4 * 16 and mixed > 0  # some prompt groups had both right and wrong rollouts
    assert tr.scorer.sigma_bar == pytest.approx(bar, rel=1e-5)
    rows = [json.loads(x) for x in (tmp_path / "hero" / "metrics.jsonl").read_text().splitlines()]
    assert all("hero/weight_mean" in r and r["hero/weight_mean"] != 1.0 for r in rows if "reward" in r)


class Events(TrainerCallback):
    def __init__(self, log):
        self.log = log

    def on_optimizer_step(self, args, state, control, **kw):
        self.log.append("policy_step")


@pytest.mark.slow
def test_rm_update_runs_in_cooper_order(warm_policy, tmp_path):
    out = tmp_path / "cooper"
    cfg = load_config(CotrainConfig, None, overrides(warm_policy, out, **{
        "scorer.name": "longrm", "scorer.longrm.update": "true", "scorer.longrm.update_lr": "1e-3",
        "scorer.longrm.sigmoid": "true", "grpo.num_generations": 4, "grpo.prompts_per_step": 4,
        "train.max_steps": 4}))
    log: list[str] = []

    class Rec(Record):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.events = log
            rm, score, update = self.scorer, self.scorer.score, self.scorer.update
            rm0 = {k: v.clone() for k, v in rm.model.named_parameters()}
            self.rm0 = rm0

            def score_w(samples):
                log.append("score")
                return score(samples)

            def update_w(batch):
                log.append("update")
                # the policy's rewards came from the RM as it is *before* this update
                assert torch.tensor(score(batch.samples)) == pytest.approx(batch.scores, abs=1e-5)
                assert batch.advantages.shape == (16,) and batch.rule_scores.shape == (16,)
                res = update(batch)
                assert res["rm/pairs"] == 0 or torch.tensor(score(batch.samples)) != pytest.approx(batch.scores, abs=1e-6)
                self.__dict__.setdefault("updates", []).append(res)
                return res

            rm.score, rm.update = score_w, update_w

    torch.manual_seed(0)
    tr = run_cotrain(cfg, trainer_cls=Rec, callbacks=[Events(log)])
    assert log == ["score", "update", "loss", "policy_step"] * 4
    assert sum(u["rm/pairs"] for u in tr.updates) > 0  # real (right, wrong) pairs were found and trained on
    # the RM's weights moved; the policy optimizer never held them
    rm = tr.scorer
    assert any(not torch.equal(v, tr.rm0[k]) for k, v in rm.model.named_parameters())
    rm_ids = {id(p) for p in rm.model.parameters()}
    assert not rm_ids & {id(p) for grp in tr.optimizer.param_groups for p in grp["params"]}
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("rm/loss", 0) > 0 for r in rows) and all(0 <= r["reward"] <= 1 for r in rows if "reward" in r)
    assert (out / "rm_final" / "model.safetensors").exists() and (out / "final" / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.distributed
def test_hero_advantages_two_processes(warm_policy, tmp_path):
    """DP=2 (torchrun, gloo): the group transform runs on TRL's gathered rewards and each rank's loss gets its own
    slice of the weighted advantages — checked on both ranks against the hand computation over the whole batch."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "dp2"
    args = overrides(warm_policy, out, **{"scorer.name": "hero", "scorer.hero.alpha": 0.1, "scorer.hero.beta": 0.1,
                                          "grpo.num_generations": 4, "grpo.prompts_per_step": 2, "train.max_steps": 3})
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                        "127.0.0.1", "--master_port", str(port), str(Path(__file__).with_name("dp_hero_worker.py")),
                        *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    for r in (0, 1):
        res = json.loads((out / f"rank{r}.json").read_text())
        assert res["n_global"] == [16, 16, 16]  # 2 ranks x 2 prompts x 4 rollouts gathered per step
        assert res["checked"] == 3 * 8 and res["worst"] < 1e-4, res
        assert res["sigma_bar"] == pytest.approx(res["hand_sigma_bar"], rel=1e-5)
