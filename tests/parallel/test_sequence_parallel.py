"""SP=2 vs SP=1 on the same tiny model and batch, 2 processes over gloo (launched by this test).

(a) packed causal-LM loss, (b) shared-context LOGO log-probs with V=2, (c) discriminative last-token reward,
(d) one plain causal sequence; odd row lengths (padded to a multiple of 4 for zigzag, 2 for contiguous), with
and without gradient checkpointing, head-stride chunking. Both row layouts: zigzag (the default; rank r owns
chunks r and 3-r of 4) and contiguous. The SP=1 reference is computed independently in each process (no
communication). Loss within 1e-5 and every parameter gradient within 1e-4 relative (world-averaged, as
DeepSpeed does).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sp_worker import CASES  # noqa: E402

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

WORKER = Path(__file__).resolve().parent / "sp_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("sp") / "results.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), str(WORKER), str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_sp2_matches_sp1(sp_results, name):
    r = sp_results[name]
    assert r["length"] % 2 == 1, "the batch should exercise padding to the SP divisor"
    layout = next(c[5] for c in CASES if c[0] == name)
    rows = r["rows"]  # rank 0's global row ranges
    assert r["layout"] == layout and len(rows) == (2 if layout == "zigzag" else 1), r
    if layout == "zigzag":  # chunks 0 and 3 of 4
        padded = r["length"] + 4 - r["length"] % 4
        assert rows == [[0, padded // 4], [3 * padded // 4, padded]], r
    assert r["loss_rel"] < 1e-5, r
    assert r["loss_rank_spread"] == 0.0, r
    assert r["grad_rel"] < 1e-4, r
