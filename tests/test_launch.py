"""longrm.launch: SLURM node lists expanded as ``scontrol show hostnames`` does, and the srun + torchrun lines."""
import shutil
import subprocess

import pytest

from longrm.launch import build_launch, expand_nodelist, gpus_per_node


@pytest.mark.parametrize("nodelist, hosts", [
    ("gpu01", ["gpu01"]),
    ("gpu[01-02]", ["gpu01", "gpu02"]),
    ("gpu[08-11]", ["gpu08", "gpu09", "gpu10", "gpu11"]),
    ("node[001-002,010],login7", ["node001", "node002", "node010", "login7"]),
    ("n1,n2,n3", ["n1", "n2", "n3"]),
    ("a[1-2]-ib[0-1]", ["a1-ib0", "a1-ib1", "a2-ib0", "a2-ib1"]),
    ("x[9-10]", ["x9", "x10"]),
    ("host-1.cluster", ["host-1.cluster"]),
])
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("bad", ["gpu[01-02", "gpu01]", "gpu[a-b]", "gpu[3-1]"])
def test_expand_nodelist_rejects_garbage(bad):
    with pytest.raises(ValueError, match="node list"):
        expand_nodelist(bad)


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="scontrol not installed")
def test_expand_nodelist_matches_scontrol(tmp_path):
    import os

    from slurm_harness import LocalSlurm

    conf = tmp_path / "slurm.conf"  # scontrol needs a config to start; no daemon is involved
    conf.write_text(LocalSlurm(tmp_path)._conf())
    env = {**os.environ, "SLURM_CONF": str(conf)}
    for nl in ("gpu[01-02]", "node[001-002,010],login7", "a[1-2]-ib[0-1]", "x[9-10]"):
        res = subprocess.run(["scontrol", "show", "hostnames", nl], capture_output=True, text=True, timeout=30,
                             env=env)
        if res.returncode != 0:
            pytest.skip(f"scontrol show hostnames failed here: {res.stderr.strip()}")
        assert expand_nodelist(nl) == res.stdout.split(), nl


def test_gpus_per_node_sources():
    assert gpus_per_node({"GPUS_PER_NODE": "4", "SLURM_GPUS_ON_NODE": "8"}) == 4
    assert gpus_per_node({"SLURM_GPUS_ON_NODE": "8"}) == 8
    assert gpus_per_node({"GPUS_PER_NODE": "gpu:a100:8"}) == 8


def test_outside_slurm_plain_torchrun():
    p = build_launch("sft", "configs/sft_tiny.yaml", [], env={"GPUS_PER_NODE": "1", "MASTER_PORT": "29555"},
                     python="python")
    assert not p.in_slurm and p.command[0] == "python"
    assert p.command == ["python", "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "1",
                         "--master_addr", "127.0.0.1", "--master_port", "29555", "-m", "longrm", "sft",
                         "--config", "configs/sft_tiny.yaml"]


def test_sp_size_must_divide_the_world():
    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "gpu01", "SLURM_NNODES": "1", "GPUS_PER_NODE": "4"}
    with pytest.raises(ValueError, match="sp_size 8 does not divide the world size 4"):
        build_launch("align", "configs/align.yaml", [], env=env)
    # an override on the command line counts
    p = build_launch("align", "configs/align.yaml", ["--parallel.sp_size", "4"], env=env)
    assert (p.world_size, p.dp_size, p.sp_size) == (4, 1, 4)


def test_nnodes_beyond_the_node_list_is_an_error():
    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_NNODES": "3", "GPUS_PER_NODE": "8"}
    with pytest.raises(ValueError, match="names 2 host"):
        build_launch("align", None, [], env=env)
