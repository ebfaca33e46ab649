#!/usr/bin/env bash
# Iterative inference and bits-back on Kodak with a 2-core budget: every method of
# the paper's Figure 5 on the same images, lambdas and iteration count, written by
# the resumable runner (examples/evaluate.py) to $RESULTS_DIR/<method>.csv.
#
#   nohup benchmarks/kodak_iterative.sh > kodak_iterative.log 2>&1 &
#
# Default protocol (what results/kodak_crops/ holds): 8 Kodak images
# (kodim01,04,07,11,14,17,21,24), 256x256 center crops, the lambda 0.0025 ... 0.02
# runs of the mean-scale and bits-back families, 500 iterations for SGA and every
# ablation and 500 BBVI iterations, with the temperature schedules compressed 4x
# (--schedule_scale 4: tau at iteration t is the paper's tau at 4t). The paper's
# 2000 iterations on all 24 full images would cost about 4 hours per method and
# lambda on 2 cores. Two shards run side by side, each pinned to one core (one TF
# process per core is ~1.4x faster in total than one process on both).
# Re-running resumes: finished (run, image) items are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
RESULTS_DIR=${RESULTS_DIR:-results/kodak_crops}
IMAGES=${IMAGES:-../shared/data/kodak/kodim[0-2][147].png}
LAMBDAS=${LAMBDAS:-0.0025 0.005 0.01 0.02}
ITS=${ITS:-500}
SCHEDULE_SCALE=${SCHEDULE_SCALE:-4}
CROP=${CROP:-256x256}
METHODS=${METHODS:-mbt2018 bb_plain sga bb_sga unoise map danneal ste bb_no_sga}
NUM_SHARDS=${NUM_SHARDS:-2}

runs_of() {  # family -> comma-separated run names at $LAMBDAS
  # The run on the family's curve at each lambda (checkpoints.run_at: the widest).
  TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" -c 'import sys
from tfc_inference.models import checkpoints
print(",".join(checkpoints.run_at(sys.argv[1], l) for l in sys.argv[2:]))' "$1" $LAMBDAS
}

shard() {  # index
  local cpu=$(( $1 % $(nproc) ))
  local method family
  for method in $METHODS; do
    case $method in bb_*) family=mbt2018_bb ;; *) family=mbt2018 ;; esac
    echo "=== $(date +%T) shard $1: $method"
    taskset -c "$cpu" "$PYTHON" examples/evaluate.py run --method "$method" \
        --runs "$(runs_of $family)" --images "$IMAGES" --crop "$CROP" \
        --sga_its "$ITS" --bbvi_its "$ITS" --schedule_scale "$SCHEDULE_SCALE" \
        --batch_images 4 --results_dir "$RESULTS_DIR" \
        --num_shards "$NUM_SHARDS" --shard_index "$1"
  done
}

for (( i = 0; i < NUM_SHARDS; i++ )); do shard "$i" & done
wait
"$PYTHON" examples/evaluate.py summarize --results_dir "$RESULTS_DIR"
echo "=== $(date +%T) done"
