"""Server rollouts under data parallelism: one rank of ``torchrun --nproc_per_node 2`` against the test's fake server.

    python -m torch.distributed.run --nproc_per_node 2 tests/cotrain/dp_rollout_worker.py POLICY OUT URL

Runs 2 GRPO steps (rule scorer, G = 4, 2 prompts per rank) with ``rollout.backend: server`` and writes
``OUT/rank<r>.json``: per generation batch the policy's weight total when the batch starts, this rank's prompts,
completions (decoded) and rewards, plus the sampler's request counters.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cotrain_helpers import batch_keys, overrides  # noqa: E402
from longrm.config import load_config  # noqa: E402
from longrm.cotrain.run import CotrainConfig, run_cotrain  # noqa: E402
from longrm.cotrain.trainer import CoTrainer  # noqa: E402

G, P_PER_RANK, STEPS = 4, 2, 2


class Rec(CoTrainer):
    def _generate_and_score_completions(self, inputs):
        total = sum(float(p.detach().double().sum()) for p in self.model.parameters())
        out = super()._generate_and_score_completions(inputs)
        keys = batch_keys(out)
        n, tok = len(keys), self.processing_class
        start = self.accelerator.process_index * n
        self.__dict__.setdefault("rec", []).append({
            "total": total, "prompts": [tok.decode(list(p)) for p, _ in keys],
            "completions": [tok.decode(list(c), skip_special_tokens=True) for _, c in keys],
            "scores": self.last_batch["scores"][start:start + n].tolist()})
        return out


def main(policy: str, out: str, url: str) -> None:
    cfg = load_config(CotrainConfig, None, overrides(Path(policy), Path(out) / "run", **{
        "scorer.name": "rule", "grpo.num_generations": G, "grpo.prompts_per_step": P_PER_RANK,
        "train.max_steps": STEPS, "train.lr": 1e-3, "grpo.temperature": 0.7, "rollout.backend": "server",
        "rollout.server.base_url": url}))
    tr = run_cotrain(cfg, trainer_cls=Rec)
    rank = tr.accelerator.process_index
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({
        "world": tr.accelerator.num_processes, "rank": rank, "rec": tr.rec, "stats": tr.rollout_func.stats}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
