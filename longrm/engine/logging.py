"""Training telemetry on rank 0: TensorBoard scalars, a ``metrics.jsonl`` log, wandb (when installed and
enabled) and a progress bar with ETA.

Scalars per optimizer step (``train/…``): loss, reward margin, chosen/rejected rewards and log-probs,
preference accuracy (what the stage's loss reports), lr, grad norm, tokens/s; evaluation scalars go under
``eval/…``.  Other ranks get a logger that does nothing.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

__all__ = ["MetricsLogger"]


def _clean(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v) if isinstance(v, float) or not float(v).is_integer() else v
    return out


class MetricsLogger:
    def __init__(self, out_dir: str | os.PathLike, *, enabled: bool, total_steps: int, start_step: int = 0,
                 use_wandb: bool = False, run_name: str = "", config: dict | None = None, progress: bool = True):
        self.enabled = enabled
        self.total = total_steps
        self.tb = self.wandb = self.bar = self.jsonl = None
        if not enabled:
            return
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step + 1 if start_step else None)
        self.jsonl = open(out / "metrics.jsonl", "a", buffering=1)
        if use_wandb:
            try:
                import wandb  # optional

                self.wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "longrm"), name=run_name or None,
                                        config=config or {}, resume="allow", dir=str(out))
            except ImportError:
                print("longrm: train.wandb is on but wandb is not installed; logging to TensorBoard only",
                      file=sys.stderr)
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc=run_name or "train", unit="step",
                            dynamic_ncols=True, file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0)
        self._t0 = time.time()

    def log(self, step: int, metrics: dict, prefix: str = "train") -> None:
        if not self.enabled:
            return
        m = _clean(metrics)
        for k, v in m.items():
            if math.isfinite(v):
                self.tb.add_scalar(f"{prefix}/{k}", v, step)
        self.jsonl.write(json.dumps({"step": step, "split": prefix, **m}) + "\n")
        if self.wandb is not None:
            self.wandb.log({f"{prefix}/{k}": v for k, v in m.items()}, step=step)
        if self.bar is not None and prefix == "train":
            show = {k: f"{m[k]:.4g}" for k in ("loss", "accuracy", "lr") if k in m}
            self.bar.set_postfix(show, refresh=False)
        elif self.bar is not None:
            self.bar.write(file=sys.stderr, s=f"step {step} {prefix}: " + " ".join(f"{k}={v:.4g}" for k, v in m.items()))

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def write(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        self.tb.flush()
        self.tb.close()
        self.jsonl.close()
        if self.wandb is not None:
            self.wandb.finish()
