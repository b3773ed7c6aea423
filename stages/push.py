"""``longrm push``: upload a saved model folder (plus a generated model card) to the Hugging Face Hub."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from longrm.config import Section

HELP = "push a saved model folder and a model card to the Hugging Face Hub (token from HF_TOKEN)"


class PushConfig(Section):
    folder: str = Field("", description="saved model folder (save_pretrained output)")
    repo_id: str = Field("", description="hub repo, e.g. my-org/longrm-qwen3-8b")
    branch: str | None = Field(None, description="push to this branch (created if missing)")
    private: bool = True
    commit_message: str = "Upload LongRM model"
    metrics_json: str | None = Field(None, description="metrics JSON (e.g. from longrm eval) for the card")


class Config(Section):
    push: PushConfig = Field(default_factory=PushConfig)


def run(cfg: Config, api=None) -> int:
    from longrm.hub import push_folder

    p = cfg.push
    if not p.folder or not p.repo_id:
        raise SystemExit("longrm push: set push.folder and push.repo_id")
    metrics = None
    if p.metrics_json:
        raw = json.loads(Path(p.metrics_json).read_text())
        metrics = {k: v for k, v in raw.items() if isinstance(v, (int, float))} if isinstance(raw, dict) else None
    url = push_folder(p.folder, p.repo_id, branch=p.branch, private=p.private, commit_message=p.commit_message,
                      metrics=metrics, api=api)
    print(f"pushed {p.folder} -> {url}")
    return 0
