#!/usr/bin/env bash
# Install (into ./.venv) and run the whole pipeline on CPU on the embedded tiny default.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/env.sh"
cd "$ROOT"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec longrm pipeline --config configs/quickstart.yaml "$@"
