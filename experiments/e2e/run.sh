#!/usr/bin/env bash
# Every cell of e2e: run those without an ok result, then aggregate and render (results/e2e/).
#   bash experiments/e2e/run.sh [--launcher local|joblib|slurm] [--dry-run] [--set AXIS=V1,V2] [-- OVERRIDES]
# The cells, the skip rule and the options: scripts/run_experiment.py --help.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python scripts/run_experiment.py e2e "$@"
