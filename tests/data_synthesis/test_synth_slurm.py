"""slurm/synthesize.sbatch on a real one-node SLURM: a 2-task array, then the merge job it submits."""
import json
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_slurm_array_then_merge(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from slurm_harness import LocalSlurm

    if not LocalSlurm.available():
        pytest.skip("no local SLURM (scripts/test.sh installs it when run as root)")
    tree = yaml.safe_load((ROOT / "configs" / "synthesize_tiny.yaml").read_text())
    tree["source"]["synthetic"]["num_examples"] = 8
    tree["expand"]["distractors"]["pool_size"] = 40
    tree["run"]["part_size"] = 2
    out = tmp_path / "synth"
    tree["output"] = {"dir": str(out), "path": str(out / "data.jsonl")}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tree))
    with LocalSlurm(tmp_path / "slurm") as slurm:
        res = slurm.sbatch_wait([f"--output={tmp_path}/job-%a.out", "--cpus-per-task=1", "--array=0-1",
                                 str(ROOT / "slurm" / "synthesize.sbatch"), str(tmp_path / "c.yaml")],
                                env={"LONGRM_ROOT": str(ROOT), "LONGRM_SYNTH_LOG_DIR": str(tmp_path)}, timeout=600)
        logs = "".join(p.read_text() for p in tmp_path.glob("*.out"))
        assert res.returncode == 0, res.stdout + res.stderr + logs[-4000:]
        deadline = time.time() + 180
        while time.time() < deadline and not (out / "report.json").exists():
            time.sleep(1)
        logs = "".join(p.read_text() for p in tmp_path.glob("*.out"))
        assert (out / "report.json").exists(), logs[-4000:]
    assert "shard 0/2: 2 of 4 parts" in logs and "shard 1/2: 2 of 4 parts" in logs
    report = json.loads((out / "report.json").read_text())
    rows = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert len(rows) == report["kept"] > 0 and len({r["id"] for r in rows}) == len(rows)
