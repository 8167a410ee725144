#!/usr/bin/env bash
# Every cell of table1_commonsense: run those without an ok result, then aggregate and render (results/table1_commonsense/).
#   bash experiments/table1_commonsense/run.sh [--launcher local|joblib|slurm] [--dry-run] [--set AXIS=V1,V2] [-- OVERRIDES]
# The cells, the skip rule and the options: scripts/run_experiment.py --help.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python scripts/run_experiment.py table1_commonsense "$@"
