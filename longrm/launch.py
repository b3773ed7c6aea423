"""Multi-node launch under SLURM: one ``srun`` task per node, each running ``torchrun`` with one rank per GPU,
joined by a c10d rendezvous on the first node of the allocation.

``python -m longrm.launch STAGE CONFIG [--section.key VALUE ...]`` is what ``slurm/{sft,align,disrm}.sbatch``
run.  It reads the allocation from the environment SLURM gives the batch script (``SLURM_JOB_NODELIST``,
``SLURM_NNODES``, ``SLURM_JOB_ID``, ``SLURM_CPUS_PER_TASK``, ``SLURM_GPUS_ON_NODE``), expands the compact node
list (``gpu[01-02,07]``, ``a[1-2]-ib[0-1]``, ``n1,n2``) the way ``scontrol show hostnames`` does, takes the
first host as the rendezvous endpoint, checks that ``parallel.sp_size`` divides the world size, prints the
layout and ``exec``s ``srun ... python -m torch.distributed.run ... -m longrm STAGE ...``.  Outside a SLURM job
it runs the ``torchrun`` line directly on this machine.  ``LONGRM_DRY_RUN=1`` (or ``--dry-run``) prints the
commands, one line per node, and runs nothing.

Environment: ``GPUS_PER_NODE`` (default: ``SLURM_GPUS_ON_NODE``, then ``nvidia-smi -L``, else 1),
``MASTER_PORT`` (default: 20000 + job id mod 20000), ``OMP_NUM_THREADS`` (default: CPUs per task / GPUs).
"""
from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["expand_nodelist", "gpus_per_node", "LaunchPlan", "build_launch", "main"]


def _split_top(s: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"node list {s!r}: unbalanced ']'")
        if ch == sep and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise ValueError(f"node list {s!r}: unbalanced '['")
    out.append(cur)
    return [x for x in (o.strip() for o in out) if x]


def _expand_range(body: str, whole: str) -> list[str]:
    vals: list[str] = []
    for part in body.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"node list {whole!r}: bad range {part!r}")
        lo, hi = m.group(1), m.group(2)
        if hi is None:
            vals.append(lo)
            continue
        if int(hi) < int(lo):
            raise ValueError(f"node list {whole!r}: range {part!r} runs backwards")
        width = len(lo)  # zero padding follows the lower bound, as SLURM does
        vals += [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    return vals


def expand_nodelist(nodelist: str) -> list[str]:
    """``'gpu[01-02],cpu7'`` -> ``['gpu01', 'gpu02', 'cpu7']`` (the order ``scontrol show hostnames`` gives).

    Several bracket groups in one name expand as a product, last group fastest: ``r[1-2]n[1-2]`` ->
    ``r1n1 r1n2 r2n1 r2n2``.
    """
    hosts: list[str] = []
    for item in _split_top(nodelist):
        pieces = re.split(r"(\[[^\]]*\])", item)
        choices = [_expand_range(p[1:-1], nodelist) if p.startswith("[") else [p] for p in pieces if p != ""]
        hosts += ["".join(c) for c in itertools.product(*choices)]
    return hosts


def gpus_per_node(env: dict | None = None) -> int:
    """``GPUS_PER_NODE``, else SLURM's ``SLURM_GPUS_ON_NODE``, else ``nvidia-smi -L`` lines, else 1."""
    env = os.environ if env is None else env
    for key in ("GPUS_PER_NODE", "SLURM_GPUS_ON_NODE"):
        v = env.get(key, "").strip()
        if v:
            m = re.search(r"(\d+)\s*$", v)  # "8" or "gpu:a100:8"
            if m and int(m.group(1)) >= 1:
                return int(m.group(1))
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
            n = sum(1 for line in out.splitlines() if line.startswith("GPU "))
            if n:
                return n
        except (OSError, subprocess.SubprocessError):
            pass
    return 1


def _sp_size(config: str | None, overrides: list[str]) -> int:
    """``parallel.sp_size`` of the config after the overrides (1 when unset); YAML only, no stage import."""
    if not config:
        return 1
    import yaml

    from .config import ConfigError, _set_dotted, parse_overrides

    try:
        tree = yaml.safe_load(Path(config).read_text()) or {}
        for k, v in parse_overrides(overrides):
            _set_dotted(tree, k, v)
    except (OSError, yaml.YAMLError, ConfigError):
        return 1  # the stage reports config problems itself, with the key and file named
    sp = (tree.get("parallel") or {}).get("sp_size", 1) if isinstance(tree, dict) else 1
    return int(sp) if isinstance(sp, int) and sp >= 1 else 1


@dataclass
class LaunchPlan:
    stage: str
    hosts: list[str]
    nnodes: int
    gpus_per_node: int
    master_addr: str
    master_port: int
    job_id: str
    sp_size: int
    in_slurm: bool
    torchrun: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)  # what gets exec'd (srun ... torchrun ..., or torchrun)
    env: dict = field(default_factory=dict)

    @property
    def world_size(self) -> int:
        return self.nnodes * self.gpus_per_node

    @property
    def dp_size(self) -> int:
        return self.world_size // self.sp_size

    def describe(self) -> str:
        g = self.gpus_per_node
        lines = [
            f"longrm {self.stage}: job {self.job_id} restart {os.environ.get('SLURM_RESTART_COUNT', '0')}: "
            f"{self.nnodes} node(s) x {g} GPU(s) = world {self.world_size} = dp {self.dp_size} x sp {self.sp_size}; "
            f"rendezvous {self.master_addr}:{self.master_port}",
            "env: " + " ".join(f"{k}={v}" for k, v in sorted(self.env.items())),
            "$ " + shlex.join(self.command),
        ]
        if self.in_slurm:
            # c10d hands out node ranks in arrival order, so no node is promised a particular rank range
            for i, h in enumerate(self.hosts[: self.nnodes]):
                lines.append(f"  on {h} (node {i + 1} of {self.nnodes}, {g} local ranks): " + shlex.join(self.torchrun))
        return "\n".join(lines)


def build_launch(stage: str, config: str | None, overrides: list[str] | None = None,
                 env: dict | None = None, python: str | None = None) -> LaunchPlan:
    """The srun + torchrun command lines for ``longrm STAGE --config CONFIG OVERRIDES`` in this allocation."""
    env = dict(os.environ if env is None else env)
    overrides = list(overrides or [])
    in_slurm = bool(env.get("SLURM_JOB_ID"))
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    hosts = expand_nodelist(nodelist) if (in_slurm and nodelist) else ["127.0.0.1"]
    nnodes = int(env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES") or len(hosts)) if in_slurm else 1
    if nnodes > len(hosts):
        raise ValueError(f"SLURM_NNODES={nnodes} but the node list {nodelist!r} names {len(hosts)} host(s)")
    gpn = gpus_per_node(env)
    job_id = env.get("SLURM_JOB_ID", "local")
    master = hosts[0] if nnodes > 1 else "127.0.0.1"
    port = int(env.get("MASTER_PORT") or 20000 + (int(job_id) if job_id.isdigit() else 0) % 20000)
    sp = _sp_size(config, overrides)
    world = nnodes * gpn
    if world % sp:
        raise ValueError(f"parallel.sp_size {sp} does not divide the world size {world} ({nnodes} x {gpn} GPUs)")
    cpus = env.get("SLURM_CPUS_PER_TASK", "")
    threads = env.get("OMP_NUM_THREADS") or str(max(1, int(cpus or 2) // gpn))
    run_env = {"OMP_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}
    py = python or sys.executable
    torchrun = [py, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc_per_node", str(gpn)]
    if nnodes > 1 or in_slurm:
        torchrun += ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"{master}:{port}", "--rdzv_id", job_id]
    else:
        torchrun += ["--master_addr", "127.0.0.1", "--master_port", str(port)]
    torchrun += ["-m", "longrm", stage] + (["--config", config] if config else []) + overrides
    if in_slurm:
        # one task per node; --cpus-per-task is passed on explicitly (srun does not inherit it from sbatch in
        # SLURM 22.05+), otherwise all ranks of a node would share one CPU under cgroup binding.
        command = ["srun", "--kill-on-bad-exit=1", f"--nodes={nnodes}", f"--ntasks={nnodes}", "--ntasks-per-node=1"]
        if cpus:
            command.append(f"--cpus-per-task={cpus}")
        command += torchrun
    else:
        command = list(torchrun)
    return LaunchPlan(stage, hosts, nnodes, gpn, master, port, job_id, sp, in_slurm, torchrun, command, run_env)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    dry = os.environ.get("LONGRM_DRY_RUN", "") not in ("", "0")
    if argv and argv[0] == "--dry-run":
        dry, argv = True, argv[1:]
    if len(argv) < 2 or argv[0].startswith("-"):
        print("usage: python -m longrm.launch [--dry-run] STAGE CONFIG.yaml [--section.key VALUE ...]", file=sys.stderr)
        return 2
    stage, config, rest = argv[0], argv[1], argv[2:]
    try:
        plan = build_launch(stage, config, rest)
    except ValueError as e:
        print(f"longrm launch: {e}", file=sys.stderr)
        return 2
    print(plan.describe(), flush=True)
    if dry:
        return 0
    os.environ.update(plan.env)
    os.execvp(plan.command[0], plan.command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
