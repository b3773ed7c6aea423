"""A real one-node SLURM on localhost for tests of the slurm/ scripts (see shared/notes/slurm-localhost.md).

``LocalSlurm`` starts munged, slurmctld and slurmd with a fresh state folder and stops them on exit.  It is
available where the SLURM daemons are installed (scripts/test.sh installs them from Debian when run as root);
``LocalSlurm.available()`` says whether it can run here.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


class LocalSlurm:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.procs: list[subprocess.Popen] = []

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged"))

    def _conf(self) -> str:
        host = socket.gethostname().split(".")[0]
        r = self.root
        return "\n".join([
            f"ClusterName=longrm-test", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", "MpiDefault=none", "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "ReturnToService=2", "MailProg=/bin/true",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool", f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd.pid", f"SlurmctldLogFile={r}/slurmctld.log", f"SlurmdLogFile={r}/slurmd.log",
            "SlurmctldPort=16817", "SlurmdPort=16818",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=1000 State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        ]) + "\n"

    def __enter__(self) -> "LocalSlurm":
        for d in ("state", "spool"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        conf = self.root / "slurm.conf"
        conf.write_text(self._conf())
        self.env = {**os.environ, "SLURM_CONF": str(conf)}
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode != 0:
            self.procs.append(subprocess.Popen(
                ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "/usr/sbin/munged", "-F"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self._wait(lambda: subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0,
                       "munged")
        for daemon in ("slurmctld", "slurmd"):
            self.procs.append(subprocess.Popen([daemon, "-D", "-f", str(conf)], env=self.env,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self._wait(lambda: self.run(["sinfo", "-h", "-o", "%t"]).stdout.strip() == "idle", "an idle node")
        return self

    def _wait(self, ok, what: str, timeout: float = 60.0) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                if ok():
                    return
            except Exception:  # noqa: BLE001 - daemons still starting
                pass
            time.sleep(0.5)
        raise TimeoutError(f"local SLURM: no {what} after {timeout:.0f} s (logs in {self.root})")

    def run(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env={**self.env, **kw.pop("env", {})}, capture_output=True, text=True, **kw)

    def sbatch_wait(self, args: list[str], timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
        """``sbatch --wait ARGS``: returns when the job (all array tasks) ended; returncode is the job's."""
        return self.run(["sbatch", "--wait", *args], timeout=timeout, env=env or {})

    def __exit__(self, *exc) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
