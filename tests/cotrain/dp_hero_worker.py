"""Run under torchrun (2 processes, gloo): a HERO co-training run; each rank checks the advantages its loss sees
against the hand computation over the gathered batch and writes ``rank<r>.json`` into ``train.output_dir``.

    python -m torch.distributed.run --nproc_per_node 2 tests/cotrain/dp_hero_worker.py --key value ...
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cotrain_helpers import hand_hero_advantages, recording_trainer  # noqa: E402
from longrm.config import load_config  # noqa: E402
from longrm.cotrain.run import CotrainConfig, run_cotrain  # noqa: E402


def main():
    cfg = load_config(CotrainConfig, None, sys.argv[1:])
    out = Path(cfg.train.output_dir)
    tr = run_cotrain(cfg, trainer_cls=recording_trainer())
    h, G = cfg.scorer.hero, cfg.grpo.num_generations
    rank, bar, worst, checked, n_global = tr.accelerator.process_index, None, 0.0, 0, []
    for gen, (keys, got) in zip(tr.gens, tr.losses):
        rule = [int(x) for x in gen["rule"].tolist()]
        want, bar = hand_hero_advantages(gen["scores"].tolist(), rule, G, h.alpha, h.beta, h.eps, h.w_min, h.w_max, h.k,
                                         h.ema_momentum, bar)
        n_local = len(gen["keys"])
        n_global.append(len(gen["scores"]))
        mine = want[rank * n_local:(rank + 1) * n_local]  # this rank's slice of the gathered batch
        expected = dict(zip(gen["keys"], mine))
        for key, a in zip(keys, got.tolist()):
            worst = max(worst, abs(a - expected[key]))
            checked += 1
    (out / f"rank{rank}.json").write_text(json.dumps({"worst": worst, "checked": checked, "n_global": n_global,
                                                      "sigma_bar": tr.scorer.sigma_bar, "hand_sigma_bar": bar}))


if __name__ == "__main__":
    main()
