"""Helpers for the stage tests: run ``longrm <stage>`` in a subprocess (optionally under torchrun), read metrics."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A small, fast, deterministic align run on the tiny model + synthetic set (fp32, ZeRO-2, no warmup).
TINY = [
    "--model.name_or_path", "tiny:qwen2", "--model.dtype", "float32", "--model.gradient_checkpointing", "false",
    "--parallel.kernel", "torch", "--train.seed", "0", "--train.lr", "2e-3", "--train.warmup_ratio", "0",
    "--train.micro_batch_size", "2", "--train.zero_stage", "2", "--train.log_every", "1",
    "--data.path", "synthetic:n=64,words=40,seed=0", "--data.max_length", "1024",
]


def env() -> dict:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
             PYTHONPATH=str(REPO) + os.pathsep + e.get("PYTHONPATH", ""))
    return e


def cmd(stage: str, args: list[str], nproc: int = 1) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "longrm", stage, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
            "127.0.0.1", "--master_port", str(_free_port()), "-m", "longrm", stage, *args]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_worker(script: str | Path, args: list[str], nproc: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a test worker script under ``torchrun --nproc_per_node nproc`` (gloo, localhost); fail with its output."""
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
                        "127.0.0.1", "--master_port", str(_free_port()), str(script), *map(str, args)],
                       cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p


def run(stage: str, args: list[str], nproc: int = 1, timeout: float = 300) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd(stage, args, nproc), cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"longrm {stage} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return p


def run_and_kill_after_checkpoint(stage: str, args: list[str], out_dir: Path, tag: str, timeout: float = 300) -> int:
    """Start the run and SIGKILL it (kill -9) as soon as ``checkpoints/latest`` names ``tag``."""
    latest = out_dir / "checkpoints" / "latest"
    p = subprocess.Popen(cmd(stage, args), cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            if latest.exists() and latest.read_text().strip() == tag:
                os.kill(p.pid, signal.SIGKILL)
                break
            if p.poll() is not None:
                raise AssertionError(f"run ended (rc {p.returncode}) before checkpoint {tag}:\n{p.stderr.read()[-4000:]}")
            time.sleep(0.02)
        else:
            raise AssertionError(f"no checkpoint {tag} within {timeout}s")
        return p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()


def metrics(out_dir: Path, split: str = "train") -> list[dict]:
    rows = [json.loads(x) for x in (Path(out_dir) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r for r in rows if r["split"] == split]


def last_by_step(rows: list[dict]) -> dict[int, dict]:
    return {r["step"]: r for r in rows}  # later rows (a resumed run) win
