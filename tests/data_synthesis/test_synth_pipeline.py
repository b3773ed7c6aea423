"""End-to-end synthesis on the tiny config: output format, report, sharding + merge, kill and resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from data_synthesis.config import SynthesizeConfig
from data_synthesis.pipeline import merge, run_synthesis
from longrm.records import load_preference_records

from synth_helpers import synth_config

ROOT = Path(__file__).resolve().parents[2]


def _cfg(tmp: Path, name: str, **over) -> SynthesizeConfig:
    return synth_config("synthesize_tiny.yaml", {
        "source.synthetic.num_examples": 12, "expand.distractors.pool_size": 80, "run.part_size": 3,
        "output": {"dir": str(tmp / name), "path": str(tmp / name / "data.jsonl")}, **over})


def _rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_end_to_end_output_is_what_the_stages_read(tmp_path):
    cfg = _cfg(tmp_path, "one", **{"tasks.pairwise_fraction": 0.5})
    out = run_synthesis(cfg)
    report = out["report"]
    loaded = load_preference_records(cfg.output.path)
    assert len(loaded) == report["kept"] > 0 and not loaded.skipped
    ids = [r.id for r in loaded]
    assert len(ids) == len(set(ids))
    assert report["kept"] + sum(report["dropped"].values()) == report["tasks"]
    assert sum(report["kept_by_bucket"].values()) == report["kept"]
    assert set(report["kept_by_kind"]) == {"pointwise", "pairwise"}
    for r in loaded:
        m = r.metadata
        assert set(m["scores"]) == {"oracle-a", "oracle-b", "oracle-c"}
        assert sum(m["conf"]) == 3 and m["conf"][0] >= 2
        assert m["chosen_model"] not in m["reject_models"] and len(r.rejected) == len(m["reject_models"])
        assert r.chosen not in r.rejected  # a reject identical to the chosen judgement is no preference
        assert m["scores"][m["chosen_model"]] == m["chosen_score"]
        assert r.prompt[0]["role"] == "system" and r.prompt[-1]["role"] == "user"
        assert m["length_bucket"] == "4k"
        user = r.prompt[-1]["content"]
        assert user[m["insert_char"]:].startswith(f"<{m['tag']}>{r.context}</{m['tag']}>")
        if m["task"] == "pointwise":
            assert r.chosen.rstrip().endswith(f"[Score: {m['chosen_score']}]")
        else:
            assert r.chosen.rstrip().endswith("[[A]]" if m["chosen_score"] == 0 else "[[B]]")
    without = sum(not r.rejected for r in loaded)
    assert report["rejects"]["rows_without_rejects"] == without
    assert report["rejects"]["per_kept_row"] == round(sum(len(r.rejected) for r in loaded) / len(loaded), 3)
    work = Path(cfg.output.dir)
    assert (work / "report.md").read_text().startswith("# Synthesis report")
    dropped = [d for p in sorted((work / "parts").glob("*.dropped.jsonl")) for d in _rows(p)]
    assert sum(d.get("count", 1) for d in dropped) == sum(report["dropped"].values())


def test_shards_then_merge_equal_one_run(tmp_path):
    one = _cfg(tmp_path, "single")
    run_synthesis(one)
    for i in range(2):
        shard = _cfg(tmp_path, "sharded", **{"run.num_shards": 2, "run.shard_index": i, "run.action": "process"})
        if i == 1:  # merging before every shard finished is refused
            with pytest.raises(RuntimeError, match="unfinished"):
                merge(shard)
        run_synthesis(shard)
    run_synthesis(_cfg(tmp_path, "sharded", **{"run.num_shards": 2, "run.action": "merge"}))
    assert _rows(tmp_path / "single" / "data.jsonl") == _rows(tmp_path / "sharded" / "data.jsonl")


def test_changed_config_is_refused(tmp_path):
    run_synthesis(_cfg(tmp_path, "w", **{"source.synthetic.num_examples": 3}))
    with pytest.raises(RuntimeError, match="different config"):
        run_synthesis(_cfg(tmp_path, "w", **{"source.synthetic.num_examples": 3, "vote.min_agree": 3}))
    run_synthesis(_cfg(tmp_path, "w", **{"source.synthetic.num_examples": 3, "vote.min_agree": 3,
                                          "output.overwrite": True}))


@pytest.mark.slow
def test_kill_and_resume_without_duplicates(tmp_path):
    over = {"source.synthetic.num_examples": 24, "run.part_size": 2}
    ref = _cfg(tmp_path, "ref", **over)
    run_synthesis(ref)
    cfg = _cfg(tmp_path, "killed", **over)
    tree = cfg.model_dump(mode="json")
    for j in tree["judges"]:
        j["oracle"]["delay_s"] = 0.15   # simulated latency: ~0.5 s per part
    ref_tree = ref.model_dump(mode="json")
    ref_tree["judges"] = tree["judges"]
    cfg_path = tmp_path / "killed.yaml"
    cfg_path.write_text(yaml.safe_dump(tree))
    cmd = [sys.executable, "-m", "longrm", "synthesize", "--config", str(cfg_path)]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    parts = Path(cfg.output.dir) / "parts"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*.stats.json"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(parts.glob("*.stats.json")))
    assert 3 <= finished < 12, f"kill landed after {finished} of 12 parts"
    assert not (Path(cfg.output.dir) / "data.jsonl").exists()
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{finished} already finished" in again.stderr
    rows = _rows(Path(cfg.output.dir) / "data.jsonl")
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    # the delay does not change rows, so the resumed output equals an uninterrupted run's
    assert rows == _rows(tmp_path / "ref" / "data.jsonl")
    assert not list(parts.glob(".*"))  # no temporary files left behind
