"""``longrm pipeline``: run several stages in order, each as its own process, resumably.

Each step names a stage, its config file and overrides; ``{out}`` in any override is replaced by the
pipeline's ``output_dir``.  A step that finished is recorded in ``{out}/pipeline_state.json`` and skipped
when the same command is run again (each stage is itself resumable, so a killed step picks up where it
stopped).  ``launcher`` runs a step under e.g. ``torchrun --nproc_per_node 2``.  The quickstart
(``configs/quickstart.yaml``) is such a pipeline on the embedded tiny default.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from pydantic import Field

from longrm.config import Section, atomic_write_text, save_resolved

HELP = "run several stages in order (each in its own process), skipping steps already done"


class Step(Section):
    stage: str = Field(..., description="stage name, as in 'longrm --help'")
    config: str | None = Field(None, description="the stage's config file")
    overrides: list[str] = Field(default_factory=list, description="'--a.b value' pairs; {out} = output_dir")
    launcher: str | None = Field(None, description="e.g. 'torchrun --nproc_per_node 2' (default: plain process)")
    name: str | None = Field(None, description="step name in the state file (default: the stage name)")


class QualityEntry(Section):
    name: str = Field(..., description="the judge, e.g. 'generative judge'")
    stages: dict[str, str] = Field(..., description="stage label -> eval run folder or metrics JSON ({out} allowed), "
                                   "in order, e.g. {before: ..., sft: ..., logo: ...}")


class PipelineConfig(Section):
    output_dir: str = "outputs/pipeline"
    steps: list[Step] = Field(default_factory=list)
    summary: list[str] = Field(default_factory=list, description="JSON files (with {out}) printed at the end")
    quality: list[QualityEntry] = Field(default_factory=list, description="eval runs compared before/after: "
                                        "written to {out}/quality.md and quality.json, printed, and summed up in "
                                        "the final JSON line")


class Config(Section):
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)


def _command(step: Step, out: str) -> list[str]:
    args = [a.replace("{out}", out) for a in step.overrides]
    tail = [step.stage] + (["--config", step.config] if step.config else []) + args
    if step.launcher:
        return shlex.split(step.launcher) + ["-m", "longrm"] + tail
    return [sys.executable, "-m", "longrm"] + tail


def _quality(p: PipelineConfig, out: Path, state: dict, t_start: float) -> None:
    """Before/after table and the closing JSON line (one line, machine-readable, last on stdout)."""
    from longrm.eval.quality import quality_summary, quality_table

    line: dict = {"output_dir": str(out), "wall_seconds": round(time.time() - t_start, 1),
                  "steps_seconds": round(sum(v.get("seconds", 0) for v in state.values()), 1)}
    if p.quality:
        entries = [{"name": q.name, "stages": {k: v.replace("{out}", str(out)) for k, v in q.stages.items()}}
                   for q in p.quality]
        summary = quality_summary(entries)
        table = quality_table(summary)
        atomic_write_text(out / "quality.md", table)
        atomic_write_text(out / "quality.json", json.dumps(summary, indent=2) + "\n")
        print(table, flush=True)
        line.update(quality=summary, paths={"quality_table": str(out / "quality.md"),
                                            **{f"{e['name']}/{k}": v for e in entries for k, v in e["stages"].items()}})
    print(json.dumps(line), flush=True)


def run(cfg: Config) -> int:
    t_start = time.time()
    p = cfg.pipeline
    out = Path(p.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, out, "pipeline_config.yaml")
    state_file = out / "pipeline_state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    names = [s.name or s.stage for s in p.steps]
    if len(set(names)) != len(names):
        raise SystemExit(f"longrm pipeline: step names must be unique, got {names} (set 'name' on repeats)")
    for step, name in zip(p.steps, names):
        if state.get(name, {}).get("done"):
            print(f"[pipeline] {name}: done earlier, skipped", flush=True)
            continue
        cmd = _command(step, str(out))
        print(f"[pipeline] {name}: {shlex.join(cmd)}", flush=True)
        t0 = time.time()
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"[pipeline] {name} failed with exit code {rc}; rerun the same command to resume", flush=True)
            return rc
        state[name] = {"done": True, "seconds": round(time.time() - t0, 1)}
        atomic_write_text(state_file, json.dumps(state, indent=2))
    for f in p.summary:
        path = Path(f.replace("{out}", str(out)))
        if path.exists():
            print(f"[pipeline] {path}:\n{path.read_text()}", flush=True)
    print(f"[pipeline] all {len(p.steps)} steps done: {out}", flush=True)
    _quality(p, out, state, t_start)
    return 0
