"""slurm/align.sbatch submitted to a real local SLURM: srun + torchrun (c10d rendezvous) + longrm align."""
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_align_sbatch_runs_and_resumes(tmp_path, tiny_model_dir):
    from slurm_harness import LocalSlurm

    if not LocalSlurm.available():
        pytest.skip("no local SLURM (scripts/test.sh installs it when run as root)")
    out = tmp_path / "align"
    args = [f"--output={tmp_path}/job.out", "--cpus-per-task=2", str(REPO / "slurm" / "align.sbatch"),
            str(REPO / "configs" / "align_tiny.yaml"), "--train.output_dir", str(out), "--train.max_steps", "2",
            "--train.save_every", "1", "--data.eval_path", "null", "--train.micro_batch_size", "2"]
    env = {"LONGRM_ROOT": str(REPO), "GPUS_PER_NODE": "1", "OMP_NUM_THREADS": "1"}
    with LocalSlurm(tmp_path / "slurm") as slurm:
        res = slurm.sbatch_wait(args, env=env, timeout=600)
        log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
        assert res.returncode == 0, res.stdout + res.stderr + log[-4000:]
        assert (out / "final" / "model.safetensors").exists()
        res = slurm.sbatch_wait(args, env=env, timeout=600)  # a resubmitted job resumes (here: already done)
        log = (tmp_path / "job.out").read_text()
        assert res.returncode == 0 and "resumed from" in log
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
