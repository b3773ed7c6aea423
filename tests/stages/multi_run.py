"""Run several ``longrm <stage> ...`` commands in one process (one DeepSpeed/torch import for all of them).

Usage: python multi_run.py '[["sft", ["--config", "...", ...]], ["align", [...]]]'

With ``LONGRM_FAKE_HUB_LOG=FILE`` the Hub client is replaced by a fake that appends one JSON line per
``upload_folder`` call (repo, revision, files) to FILE -- for testing checkpoint pushes offline.
"""
import json
import os
import sys
from pathlib import Path

from longrm.cli import main


class FakeHub:
    def __init__(self, log: str):
        self.log = log

    def create_repo(self, **kw):
        return None

    def create_branch(self, **kw):
        return None

    def upload_folder(self, *, repo_id, folder_path, revision=None, **kw):
        files = sorted(p.name for p in Path(folder_path).iterdir())
        with open(self.log, "a") as f:
            f.write(json.dumps({"repo": repo_id, "revision": revision, "folder": folder_path, "files": files}) + "\n")
        return "fake-commit"


if __name__ == "__main__":
    if os.environ.get("LONGRM_FAKE_HUB_LOG"):
        import longrm.hub

        fake = FakeHub(os.environ["LONGRM_FAKE_HUB_LOG"])
        longrm.hub._hf_api = lambda api=None: fake
    for stage, args in json.loads(sys.argv[1]):
        print(f"=== longrm {stage} {' '.join(args)}", flush=True)
        rc = main([stage, *args])
        if rc:
            sys.exit(rc)
