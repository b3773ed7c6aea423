"""Push a saved model folder (with a generated model card) to the Hugging Face Hub.

The token comes from the environment only (``HF_TOKEN``, or whatever ``huggingface_hub`` finds in its own
login cache); it is never logged or written.  ``push_folder`` creates the repo (and branch) when missing and
uploads the folder in one commit; ``BackgroundPusher`` runs pushes on a worker thread so training never
waits on the network.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any

__all__ = ["model_card", "push_folder", "BackgroundPusher"]

log = logging.getLogger(__name__)


def _hf_api(api: Any | None):
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi(token=os.environ.get("HF_TOKEN") or None)


def model_card(folder: str | os.PathLike, repo_id: str, metrics: dict | None = None) -> str:
    """A README.md model card from what the folder holds: base model, stage, resolved config, metrics."""
    folder = Path(folder)
    cfg: dict = {}
    if (folder / "config.json").exists():
        cfg = json.loads((folder / "config.json").read_text())
    resolved = folder / "resolved_config.yaml"
    arch = ", ".join(cfg.get("architectures", [])) or "unknown"
    lines = [
        "---", "library_name: transformers", "tags:", "- reward-model", "- long-context", "- longrm", "---", "",
        f"# {repo_id.split('/')[-1]}", "",
        "A long-context reward model trained with LongRM "
        "(short-to-long synthesis, SFT cold start, LOGO/DPO alignment or Bradley-Terry).", "",
        f"- architecture: `{arch}`",
        f"- max position embeddings: {cfg.get('max_position_embeddings', 'n/a')}",
    ]
    if resolved.exists():
        lines += ["", "## Training config", "", "```yaml", resolved.read_text().rstrip(), "```"]
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    return "\n".join(lines) + "\n"


def push_folder(folder: str | os.PathLike, repo_id: str, *, branch: str | None = None, private: bool = True,
                commit_message: str = "Upload LongRM model", metrics: dict | None = None,
                write_card: bool = True, api: Any | None = None) -> str:
    """Upload ``folder`` to ``repo_id`` (optionally on ``branch``); returns the commit URL or id.

    A README.md model card is written into the folder first unless one exists or ``write_card`` is False.
    """
    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder}: not a saved model folder (no config.json)")
    if write_card and not (folder / "README.md").exists():
        from .config import atomic_write_text

        atomic_write_text(folder / "README.md", model_card(folder, repo_id, metrics))
    hf = _hf_api(api)
    hf.create_repo(repo_id=repo_id, private=private, exist_ok=True)
    if branch:
        hf.create_branch(repo_id=repo_id, branch=branch, exist_ok=True)
    info = hf.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=branch,
                            commit_message=commit_message, ignore_patterns=["*.tmp", ".*"])
    log.info("pushed %s to %s%s", folder, repo_id, f"@{branch}" if branch else "")
    return str(getattr(info, "commit_url", info))


class BackgroundPusher:
    """Pushes folders on one worker thread, in order; ``submit`` never blocks, ``close`` waits for the queue.

    A failed push is logged and remembered in ``errors``; it never stops training.
    """

    def __init__(self, repo_id: str, *, branch: str | None = None, private: bool = True, api: Any | None = None):
        self.repo_id, self.branch, self.private, self.api = repo_id, branch, private, api
        self.errors: list[str] = []
        self.done: list[str] = []
        self._q: queue.Queue = queue.Queue()
        self._t = threading.Thread(target=self._work, name="longrm-hub-push", daemon=True)
        self._t.start()

    def submit(self, folder: str | os.PathLike, message: str) -> None:
        self._q.put((Path(folder), message))

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            folder, message = item
            try:
                push_folder(folder, self.repo_id, branch=self.branch, private=self.private,
                            commit_message=message, api=self.api)
                self.done.append(str(folder))
            except Exception as e:  # noqa: BLE001 - a push failure must not kill training
                self.errors.append(f"{folder}: {type(e).__name__}: {e}")
                log.warning("hub push of %s failed: %s", folder, type(e).__name__)

    def close(self, timeout: float | None = None) -> None:
        self._q.put(None)
        self._t.join(timeout)
