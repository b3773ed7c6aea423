"""`longrm eval` data-parallel over 2 processes (torchrun, gloo): each rank judges its slice, rank 0 merges."""
import json
import os
import socket
import subprocess
import sys

import pytest
import yaml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_two_ranks_split_and_merge(tmp_path, fake_judge):
    url, _ = fake_judge
    out = tmp_path / "dp"
    cfg = {"model": {"name_or_path": "judge-x"},
           "data": {"path": "synthetic", "synthetic_pairwise": 6, "synthetic_best_of_n": 5},
           "judge": {"backend": "server", "max_new_tokens": 32},
           "server": {"base_url": url, "max_retries": 0},
           "output": {"dir": str(out), "progress": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "longrm", "eval", "--config", str(tmp_path / "c.yaml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ranks = {f.name: [json.loads(x)["id"] for x in f.read_text().splitlines()] for f in (out / "shards").iterdir()}
    assert set(ranks) == {"rank0.jsonl", "rank1.jsonl"} and len(ranks["rank0.jsonl"]) == 6
    assert not set(ranks["rank0.jsonl"]) & set(ranks["rank1.jsonl"])
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 11
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_samples"] == 11 and m["columns"]["PairWise Avg."]["value"] == 1.0


@pytest.mark.slow
def test_slurm_eval_script(tmp_path, fake_judge):
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from slurm_harness import LocalSlurm

    if not LocalSlurm.available():
        pytest.skip("no local SLURM (scripts/test.sh installs it when run as root)")
    url, _ = fake_judge
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "sl"
    cfg = {"model": {"name_or_path": "judge-x"},
           "data": {"path": "synthetic", "synthetic_pairwise": 4, "synthetic_best_of_n": 2},
           "judge": {"backend": "server", "max_new_tokens": 32},
           "server": {"base_url": url, "max_retries": 0}, "output": {"progress": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with LocalSlurm(tmp_path / "slurm") as slurm:
        res = slurm.sbatch_wait([f"--output={tmp_path}/job.out", "--cpus-per-task=1",
                                 str(root / "slurm" / "eval.sbatch"), str(tmp_path / "c.yaml"),
                                 "--output.dir", str(out)],
                                env={"LONGRM_ROOT": str(root), "NPROC": "1"}, timeout=600)
        log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
        assert res.returncode == 0, res.stdout + res.stderr + log[-4000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_samples"] == 6 and m["columns"]["PairWise Avg."]["value"] == 1.0
