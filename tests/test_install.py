"""Clean install (issue 12 item 6): our pyproject raises no setuptools deprecation warning, and scripts/env.sh
prints a few progress lines a person can follow, hides pip's noise in a log, and shows the log's tail on failure.

env.sh runs here against a stub venv whose ``python`` imitates pip (no network, no real install, < 1 s).
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_license_is_an_spdx_string():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"  # PEP 639 string, not the deprecated {text = ...} table
    # setuptools accepts the string form from 77 on; an older build backend would reject it
    req = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    assert req == ["setuptools>=77"]
    assert not any(c.startswith("License ::") for c in meta["project"].get("classifiers", []))


@pytest.mark.parametrize("script", ["env.sh", "test.sh", "quickstart.sh"])
def test_scripts_parse(script):
    res = subprocess.run(["bash", "-n", str(REPO / "scripts" / script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


STUB_PYTHON = r"""#!/usr/bin/env bash
# imitates 'python -m pip install ...' and 'python -c ...' for scripts/env.sh
if [ "$1" = "-c" ]; then
  echo "UserWarning: Failed to initialize NumPy: No module named 'numpy'" >&2  # what the real torch probe says
  echo "torch==2.13.0"; exit 0
fi
echo "$*" >> "$(dirname "$0")/../calls.txt"
for i in $(seq 1 50); do
  echo "WARNING: Location 'file:///opt/pypi-more/simple/pkg$i/' is ignored: it is neither a file nor a directory." >&2
done
if [ -n "${STUB_FAIL_ON:-}" ] && [[ "$*" == *"$STUB_FAIL_ON"* ]]; then
  echo "ERROR: Could not find a version that satisfies the requirement $STUB_FAIL_ON" >&2
  exit 1
fi
echo "Successfully installed something"
"""


def _stub_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(STUB_PYTHON)
    py.chmod(0o755)
    (venv / "bin" / "activate").write_text(f'export PATH="{venv / "bin"}:$PATH"\n')
    return venv


def _run_env(venv: Path, **env) -> subprocess.CompletedProcess:
    import os

    full = {**os.environ, "LONGRM_VENV": str(venv), **env}
    return subprocess.run(["bash", str(REPO / "scripts" / "env.sh")], capture_output=True, text=True, env=full,
                          timeout=60)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_env_sh_prints_progress_not_pip_noise(tmp_path):
    venv = _stub_venv(tmp_path)
    res = _run_env(venv)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    steps = [line for line in res.stdout.splitlines() if line.startswith("[")]
    assert [s.split("]")[0] + "]" for s in steps] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"], out
    assert all(" done (" in s for s in steps) and "torch 2.13.0 CPU wheel" in steps[1]
    assert "is ignored" not in out  # pip's noise went to the log ...
    assert "NumPy" not in out and (venv / "torch-constraint.txt").read_text() == "torch==2.13.0\n"
    log = (venv / "install.log").read_text()
    assert log.count("is ignored") == 200  # ... all of it
    assert len(out.splitlines()) <= 8
    calls = (venv / "calls.txt").read_text().splitlines()
    assert calls[1].endswith("torch==2.13.0") and "-c" in calls[2].split() and "[dev]" in calls[2]
    # second run: nothing to do, nothing printed
    again = _run_env(venv)
    assert again.returncode == 0 and again.stdout == "" and again.stderr == ""
    assert len((venv / "calls.txt").read_text().splitlines()) == 4


def test_env_sh_shows_the_error_when_pip_fails(tmp_path):
    venv = _stub_venv(tmp_path)
    res = _run_env(venv, STUB_FAIL_ON="torch==")
    assert res.returncode == 1
    assert "[2/4] torch 2.13.0 CPU wheel ... FAILED (exit 1)" in res.stdout
    assert "Could not find a version that satisfies the requirement torch==" in res.stderr
    assert str(venv / "install.log") in res.stderr
    assert "is ignored" not in res.stderr  # the tail shown leaves pip's index notes out
    assert "[3/4]" not in res.stdout and not (venv / ".longrm-install-stamp").exists()
