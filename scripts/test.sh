#!/usr/bin/env bash
# Install what the tests need (into ./.venv) and run the whole suite, 2-process gloo tests included.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/env.sh"
cd "$ROOT"
# A real one-node SLURM for the tests of slurm/ (Debian packages; needs root). Without it those tests skip.
if [ "$(id -u)" = 0 ] && ! command -v slurmctld >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
     slurmctld slurmd slurm-client munge) >/dev/null 2>&1 || echo "note: SLURM could not be installed; slurm tests will skip"
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec python -m pytest -q -p no:cacheprovider "$@"
