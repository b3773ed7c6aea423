"""``longrm push``: upload a saved model folder (plus a generated model card) and optionally its dataset to the
Hugging Face Hub.  The token is read from ``HF_TOKEN`` only (there is no config key for it); ``HF_ENDPOINT``
selects another Hub (or a test server)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import Field

from longrm.config import Section

HELP = "push a saved model folder with a model card (and optionally its dataset) to the Hugging Face Hub (token from HF_TOKEN)"


class DatasetPush(Section):
    path: str | None = Field(None, description="also push this data file or folder (jsonl / parquet / save_to_disk)")
    repo_id: str = Field("", description="dataset repo, e.g. my-org/longrm-synth-128k (needed with dataset.path)")
    private: bool = True
    report: str | None = Field(None, description="synthesis report.json for the dataset card (default: found "
                                                 "beside the data)")


class PushConfig(Section):
    folder: str = Field("", description="saved model folder (save_pretrained output, e.g. outputs/align/final)")
    repo_id: str = Field("", description="hub repo, e.g. my-org/longrm-qwen3-8b")
    branch: str | None = Field(None, description="push to this branch (created if missing)")
    private: bool = Field(True, description="create the repo private (an existing repo keeps its visibility)")
    commit_message: str = "Upload LongRM model"
    metrics_json: str | None = Field(None, description="flat metrics JSON (numbers at the top level) for the card")
    eval_dir: str | None = Field(None, description="a `longrm eval` output folder: its results table and "
                                                   "accuracy-vs-length plot go into the card (and under eval/)")
    data_report: str | None = Field(None, description="synthesis report.json for the card's data summary "
                                                      "(default: found beside the run's data.path)")
    write_card: bool = Field(True, description="generate README.md (a hand-written README.md in the folder wins)")


class Config(Section):
    push: PushConfig = Field(default_factory=PushConfig)
    dataset: DatasetPush = Field(default_factory=DatasetPush)


def run(cfg: Config, api=None) -> int:
    from longrm.hub import HubError, push_dataset, push_folder

    p, d = cfg.push, cfg.dataset
    if not p.folder or not p.repo_id:
        raise SystemExit("longrm push: set push.folder and push.repo_id")
    if d.path and not d.repo_id:
        raise SystemExit("longrm push: dataset.path needs dataset.repo_id")
    metrics = None
    if p.metrics_json:
        raw = json.loads(Path(p.metrics_json).read_text())
        metrics = {k: v for k, v in raw.items() if isinstance(v, (int, float))} if isinstance(raw, dict) else None
    try:
        if d.path:
            print(f"longrm push: dataset {d.path} -> {d.repo_id} ({'private' if d.private else 'public'})")
            url = push_dataset(d.path, d.repo_id, private=d.private, report=d.report, api=api)
            print(f"longrm push: dataset pushed: {url}")
        where = f"{p.repo_id}@{p.branch}" if p.branch else p.repo_id
        print(f"longrm push: model {p.folder} -> {where} ({'private' if p.private else 'public'})")
        url = push_folder(p.folder, p.repo_id, branch=p.branch, private=p.private, commit_message=p.commit_message,
                          metrics=metrics, eval_dir=p.eval_dir, data_report=p.data_report,
                          dataset_repo=(d.repo_id or None) if d.path else None, write_card=p.write_card, api=api)
    except (HubError, FileNotFoundError) as e:
        print(f"longrm push: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - hub HTTP errors: one line, no traceback (never holds the token)
        print(f"longrm push: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"pushed {p.folder} -> {url}")
    return 0
