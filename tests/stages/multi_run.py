"""Run several ``longrm <stage> ...`` commands in one process (one DeepSpeed/torch import for all of them).

Usage: python multi_run.py '[["sft", ["--config", "...", ...]], ["align", [...]]]'
"""
import json
import sys

from longrm.cli import main

if __name__ == "__main__":
    for stage, args in json.loads(sys.argv[1]):
        print(f"=== longrm {stage} {' '.join(args)}", flush=True)
        rc = main([stage, *args])
        if rc:
            sys.exit(rc)
