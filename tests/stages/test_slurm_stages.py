"""slurm/{sft,align,disrm,eval,cotrain}.sbatch: the multi-node launch lines (dry run, 2 nodes x 8 GPUs, no SLURM
needed) and real submissions to a local one-node SLURM: srun + torchrun (c10d rendezvous) + the stage, resubmission
resumes.  (eval.sbatch is submitted in tests/eval/test_distributed.py, synthesize.sbatch in
tests/data_synthesis/test_synth_slurm.py.)"""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _dry_run(stage: str, config: str, *overrides: str, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    full.update(LONGRM_ROOT=str(REPO), LONGRM_DRY_RUN="1", **env)
    full.pop("OMP_NUM_THREADS", None)
    return subprocess.run(["bash", str(REPO / "slurm" / f"{stage}.sbatch"), config, *overrides], env=full,
                          capture_output=True, text=True, timeout=60)


TWO_NODES = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_NNODES": "2",
             "SLURM_CPUS_PER_TASK": "64", "SLURM_GPUS_ON_NODE": "8"}


@pytest.mark.parametrize("stage", ["sft", "align", "disrm"])
def test_two_nodes_by_eight_gpus_dry_run(stage):
    res = _dry_run(stage, f"configs/{stage}.yaml", "--train.output_dir", "outputs/x y", **TWO_NODES)
    assert res.returncode == 0, res.stdout + res.stderr
    print(res.stdout)  # shown with pytest -s: the commands a 2 x 8 GPU job runs
    lines = res.stdout.splitlines()
    assert lines[0] == (f"longrm {stage}: job 4242 restart 0: 2 node(s) x 8 GPU(s) = world 16 = dp 2 x sp 8; "
                        "rendezvous gpu01:24242")
    assert lines[1] == "env: OMP_NUM_THREADS=8 TOKENIZERS_PARALLELISM=false TORCH_NCCL_ASYNC_ERROR_HANDLING=1"
    cmd = shlex.split(lines[2].removeprefix("$ "))
    torchrun = ["-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "8",
                "--rdzv_backend", "c10d", "--rdzv_endpoint", "gpu01:24242", "--rdzv_id", "4242",
                "-m", "longrm", stage, "--config", f"configs/{stage}.yaml", "--train.output_dir", "outputs/x y"]
    assert cmd[:6] == ["srun", "--kill-on-bad-exit=1", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1",
                       "--cpus-per-task=64"]
    assert Path(cmd[6]).name.startswith("python") and cmd[7:] == torchrun
    per_node = lines[3:]
    assert [x.split(" (")[0].strip() for x in per_node] == ["on gpu01", "on gpu02"]
    assert all(shlex.split(x.split("): ", 1)[1])[1:] == torchrun for x in per_node)


@pytest.mark.parametrize("stage", ["eval", "cotrain"])
def test_eval_and_cotrain_dry_run(stage):
    """eval and cotrain have no sequence parallelism: every GPU of the 2 x 8 allocation is a data-parallel rank."""
    res = _dry_run(stage, f"configs/{stage}.yaml", **TWO_NODES)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == (f"longrm {stage}: job 4242 restart 0: 2 node(s) x 8 GPU(s) = world 16 = dp 16 x sp 1; "
                        "rendezvous gpu01:24242")
    cmd = shlex.split(lines[2].removeprefix("$ "))
    assert cmd[:6] == ["srun", "--kill-on-bad-exit=1", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1",
                       "--cpus-per-task=64"]
    assert cmd[7:] == ["-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "8", "--rdzv_backend",
                       "c10d", "--rdzv_endpoint", "gpu01:24242", "--rdzv_id", "4242", "-m", "longrm", stage,
                       "--config", f"configs/{stage}.yaml"]
    # NPROC (the scripts' old name for the ranks per node) still sets them
    one = _dry_run(stage, f"configs/{stage}.yaml", NPROC="1", MASTER_PORT="29512")
    assert "1 node(s) x 1 GPU(s) = world 1" in one.stdout and "--nproc_per_node 1 --master_addr" in one.stdout


def test_dry_run_checks_sp_against_the_world():
    res = _dry_run("align", "configs/align.yaml", **{**TWO_NODES, "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "gpu07",
                                                     "SLURM_GPUS_ON_NODE": "4"})
    assert res.returncode == 2 and "sp_size 8 does not divide the world size 4" in res.stderr


def test_dry_run_outside_slurm_is_plain_torchrun():
    res = _dry_run("sft", "configs/sft_tiny.yaml", GPUS_PER_NODE="1", MASTER_PORT="29511")
    assert res.returncode == 0, res.stderr
    cmd = shlex.split(res.stdout.splitlines()[2].removeprefix("$ "))
    assert cmd[1:] == ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "1", "--master_addr",
                       "127.0.0.1", "--master_port", "29511", "-m", "longrm", "sft", "--config", "configs/sft_tiny.yaml"]


# -- real submissions --------------------------------------------------------------------------------------
def _local_slurm():
    from slurm_harness import LocalSlurm

    if not LocalSlurm.available():
        pytest.skip("no local SLURM (scripts/test.sh installs it when run as root)")
    return LocalSlurm


@pytest.mark.slow
def test_align_sbatch_runs_and_resumes(tmp_path, tiny_model_dir):
    LocalSlurm = _local_slurm()
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
        assert "1 node(s) x 1 GPU(s) = world 1 = dp 1 x sp 1" in log and "$ srun --kill-on-bad-exit=1" in log
        res = slurm.sbatch_wait(args, env=env, timeout=600)  # a resubmitted job resumes (here: already done)
        log = (tmp_path / "job.out").read_text()
        assert res.returncode == 0 and "resumed from" in log
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "disrm"])
def test_sft_and_disrm_sbatch_run(stage, tmp_path, tiny_model_dir):
    """Both stages in a one-node job: 2 optimizer steps of the tiny config, the final model written."""
    LocalSlurm = _local_slurm()
    out = tmp_path / stage
    args = [f"--output={tmp_path}/job.out", "--cpus-per-task=2", str(REPO / "slurm" / f"{stage}.sbatch"),
            str(REPO / "configs" / f"{stage}_tiny.yaml"), "--train.output_dir", str(out), "--train.max_steps", "2",
            "--data.eval_path", "null", "--data.path", "synthetic:n=16,words=60,seed=0", "--train.micro_batch_size",
            "2", "--train.save_every", "0"]
    env = {"LONGRM_ROOT": str(REPO), "GPUS_PER_NODE": "1", "OMP_NUM_THREADS": "1"}
    with LocalSlurm(tmp_path / "slurm") as slurm:
        res = slurm.sbatch_wait(args, env=env, timeout=600)
        log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
    assert res.returncode == 0, res.stdout + res.stderr + log[-4000:]
    assert f"longrm {stage}: job " in log and "$ srun" in log
    assert (out / "final" / "model.safetensors").exists() and (out / "final" / "resolved_config.yaml").exists()
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"step"' in x]
    assert steps[-1] == 2


@pytest.mark.slow
def test_cotrain_sbatch_runs_and_resumes(tmp_path, tiny_model_dir):
    """cotrain_tiny (HERO over an online-trained tiny RM) as a SLURM job: 2 GRPO steps; a resubmitted job with
    max_steps 3 resumes from checkpoint-2 (scorer state included) and runs step 3 only."""
    LocalSlurm = _local_slurm()
    out = tmp_path / "cotrain"
    args = [f"--output={tmp_path}/job.out", "--cpus-per-task=2", str(REPO / "slurm" / "cotrain.sbatch"),
            str(REPO / "configs" / "cotrain_tiny.yaml"), "--train.output_dir", str(out), "--train.save_every", "1"]
    env = {"LONGRM_ROOT": str(REPO), "GPUS_PER_NODE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "LONGRM_CACHE": str(tiny_model_dir.parent)}
    with LocalSlurm(tmp_path / "slurm") as slurm:
        res = slurm.sbatch_wait(args + ["--train.max_steps", "2"], env=env, timeout=600)
        log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
        assert res.returncode == 0, res.stdout + res.stderr + log[-4000:]
        assert "longrm cotrain: job " in log and "1 node(s) x 1 GPU(s) = world 1" in log
        assert "$ srun --kill-on-bad-exit=1" in log and "cotrain (hero): 2 steps" in log
        assert (out / "checkpoint-2" / "scorer_state.pt").exists() and (out / "final" / "model.safetensors").exists()
        assert (out / "rm_final" / "model.safetensors").exists()
        res = slurm.sbatch_wait(args + ["--train.max_steps", "3"], env=env, timeout=600)
        log = (tmp_path / "job.out").read_text()
        assert res.returncode == 0, res.stdout + res.stderr + log[-4000:]
    assert "scorer state restored from" in log and "checkpoint-2" in log
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"reward"' in x]
    assert steps == [1, 2, 3]  # the second job continued from checkpoint-2 and ran step 3 only


@pytest.mark.slow
def test_usr1_requeues_and_the_rerun_resumes(tmp_path, tiny_model_dir):
    """``scancel --signal=USR1 --batch`` (what ``--signal=B:USR1@600`` sends before the time limit): the batch
    script requeues the job, SLURM restarts it (SLURM_RESTART_COUNT=1) and the rerun resumes from the last
    checkpoint and finishes."""
    import time

    LocalSlurm = _local_slurm()
    out = tmp_path / "align"
    args = [f"--output={tmp_path}/job.out", "--cpus-per-task=2", str(REPO / "slurm" / "align.sbatch"),
            str(REPO / "configs" / "align_tiny.yaml"), "--train.output_dir", str(out), "--train.max_steps", "16",
            "--train.save_every", "2", "--data.eval_path", "null", "--train.micro_batch_size", "2",
            "--data.path", "synthetic:n=64,words=150,fixed=1,seed=0"]
    env = {"LONGRM_ROOT": str(REPO), "GPUS_PER_NODE": "1", "OMP_NUM_THREADS": "1"}

    def until(ok, what, timeout=300):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if ok():
                return
            time.sleep(0.3)
        log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
        raise AssertionError(f"no {what} after {timeout} s\n{log[-3000:]}")

    with LocalSlurm(tmp_path / "slurm") as slurm:
        res = slurm.run(["sbatch", "--parsable", *args], env=env)
        assert res.returncode == 0, res.stderr
        job = res.stdout.strip().split(";")[0]
        state = lambda: slurm.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"]).stdout.strip()  # noqa: E731
        until(lambda: (out / "checkpoints" / "latest").exists(), "first checkpoint")
        assert not (out / "final").exists(), "the run finished before the signal: make it longer"
        assert slurm.run(["scancel", "--signal=USR1", "--batch", job]).returncode == 0
        until(lambda: state() in ("PENDING", "REQUEUED", "REQUEUE_HOLD"), "requeue", timeout=120)
        slurm.run(["scontrol", "release", job])
        slurm.run(["scontrol", "update", f"jobid={job}", "StartTime=now"])
        until(lambda: state() == "COMPLETED", "completed rerun", timeout=600)
    log = (tmp_path / "job.out").read_text()
    assert "SIGUSR1: requeueing job " + job in log
    assert "restart 1" in log and "resumed from" in log
    assert (out / "final" / "model.safetensors").exists()
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 16 and steps[0] == 1
    resumed_at = int(log.split("resumed from")[1].split(" at step ")[1].split()[0])
    assert 2 <= resumed_at < 16 and resumed_at % 2 == 0


if __name__ == "__main__":  # print the 2 x 8 commands: python tests/stages/test_slurm_stages.py
    for s in ("sft", "align", "disrm", "eval", "cotrain"):
        print(_dry_run(s, f"configs/{s}.yaml", **TWO_NODES).stdout)
    sys.exit(0)
