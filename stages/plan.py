"""``longrm plan --config CONFIG [--plan.nodes N --plan.gpus_per_node G ...] [--section.key VALUE ...]``: load a
training config (sft / align / disrm) with its stage's schema and print the cluster plan: world size, DP x SP,
tokens per rank, parameters and a per-GPU memory estimate (no GPU, no download).  Wiring only: longrm.plan."""
from __future__ import annotations

import json
import sys
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from longrm.config import Section

HELP = "print the cluster plan of a training config: world, dp x sp, tokens per rank, params, memory per GPU (no GPU)"


class PlanSection(Section):
    nodes: int = Field(1, ge=1, description="nodes of the job")
    gpus_per_node: int = Field(8, ge=1, description="GPUs per node (ranks per node)")
    gpu_memory_gb: float = Field(80.0, gt=0, description="memory of one GPU (A100/H100-80GB: 80)")
    stage: Literal["auto", "sft", "align", "disrm"] = Field("auto", description="auto: from the config's sections")
    model: str | None = Field(None, description="architecture source when the weights are absent: a config.json "
                                                "path, a model folder, or a table name (qwen3-8b, llama-3.1-8b)")
    print_json: bool = Field(False, description="also print the plan as one JSON line")


class Config(Section):
    """The ``plan`` section plus the training config's own sections (validated by the stage's schema in run)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, protected_namespaces=())
    plan: PlanSection = Field(default_factory=PlanSection)


def run(cfg: Config) -> int:
    from longrm.cli import discover_stages
    from longrm.plan import build_plan, detect_stage

    p = cfg.plan
    tree = dict(cfg.model_extra or {})
    try:
        stage = detect_stage(tree) if p.stage == "auto" else p.stage
    except ValueError as e:
        print(f"longrm plan: {e}", file=sys.stderr)
        return 2
    try:
        stage_cfg = discover_stages()[stage].Config.model_validate(tree)
    except ValidationError as e:
        problems = [f"{'.'.join(str(x) for x in err['loc'])}: "
                    + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"]) for err in e.errors()]
        print(f"longrm plan: not a valid {stage} config:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    try:
        plan = build_plan(stage, stage_cfg, nodes=p.nodes, gpus_per_node=p.gpus_per_node,
                          gpu_memory_gb=p.gpu_memory_gb, model_hint=p.model)
    except ValueError as e:
        print(f"longrm plan: {e}", file=sys.stderr)
        return 2
    print(plan.render())
    if p.print_json:
        print(json.dumps(plan.as_dict()))
    return 0
