#!/usr/bin/env bash
# Trains (or resumes) the 64-filter checkpoint zoo of checkpoints/README.md on 2 CPU
# cores, one run after another. Every command resumes from its run's train/ folder,
# so the script can be killed (SIGTERM exports the weights) and started again.
#
#   nohup setsid scripts/train_zoo.sh > zoo.log 2>&1 &
#
# With a stage argument it runs one part only: `base`, `ladder` (the other mean-scale
# lambdas) or `families` (scale-only and bits-back; each lambda waits until its
# mean-scale run has finished its ladder steps). `ladder` and `families` can run at
# the same time, which uses two CPU cores better than one process does.
#
# Order: the mean-scale lambda=0.01 run first, then the other lambdas fine-tuned from
# the nearest finished mean-scale run (a ladder 0.01 -> 0.005 -> 0.0025 -> 0.001 and
# 0.01 -> 0.02 -> 0.04), then the scale-only and bits-back families fine-tuned from
# the mean-scale run of the same lambda (layers whose names and shapes agree).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
TRAIN_GLOB=${TRAIN_GLOB:-../shared/data/train/*}
BASE_STEPS=${BASE_STEPS:-12000}        # mean-scale lambda=0.01 from scratch
LADDER_STEPS=${LADDER_STEPS:-400}      # other mean-scale lambdas
FAMILY_STEPS=${FAMILY_STEPS:-250}      # scale-only and bits-back fine-tunes
COMMON=(--num_filters 64 --patchsize 128 --batchsize 8 --train_glob "$TRAIN_GLOB")

run() {  # family lambda last_step lr [init_from]
  local family=$1 lmbda=$2 steps=$3 lr=$4 init=${5:-}
  local name="${family}-num_filters=64-lmbda=${lmbda}"
  local args=("${COMMON[@]}" --lambda "$lmbda" --last_step "$steps" --lr "$lr")
  [[ -n "$init" ]] && args+=(--init_from "${init}-num_filters=64-lmbda=${lmbda_init}")
  echo "=== $(date +%T) $name to step $steps (lr $lr${init:+, init $init lambda $lmbda_init})"
  "$PYTHON" "examples/${family}.py" train "${args[@]}" \
      >> "checkpoints/${name}/train.log" 2>&1 || { echo "!!! $name failed"; return 1; }
  tail -n 2 "checkpoints/${name}/train.log"
}

steps_of() {  # trained steps of a run (0 if it has no config yet)
  "$PYTHON" -c "import json, sys
try: print(json.load(open(sys.argv[1])).get('steps', 0))
except OSError: print(0)" "checkpoints/$1/config.json"
}

STAGE=${1:-all}
lmbda_init=""
if [[ $STAGE == all || $STAGE == base ]]; then
  mkdir -p checkpoints/mbt2018-num_filters=64-lmbda=0.01
  run mbt2018 0.01 "$BASE_STEPS" 3e-4
fi
if [[ $STAGE == all || $STAGE == ladder ]]; then
  for pair in 0.005:0.01 0.02:0.01 0.0025:0.005 0.04:0.02 0.001:0.0025; do
    lmbda_init=${pair#*:}
    mkdir -p "checkpoints/mbt2018-num_filters=64-lmbda=${pair%%:*}"
    run mbt2018 "${pair%%:*}" "$LADDER_STEPS" 5e-4 mbt2018
  done
fi
[[ $STAGE == all || $STAGE == families ]] || exit 0
for lmbda in 0.005 0.02 0.0025 0.04 0.001; do
  lmbda_init=$lmbda
  until (( $(steps_of "mbt2018-num_filters=64-lmbda=$lmbda") >= LADDER_STEPS )); do
    sleep 30
  done
  for family in bmshj2018 mbt2018_bb; do
    mkdir -p "checkpoints/${family}-num_filters=64-lmbda=${lmbda}"
    run "$family" "$lmbda" "$FAMILY_STEPS" 5e-4 mbt2018
  done
done
echo "=== $(date +%T) zoo done"
