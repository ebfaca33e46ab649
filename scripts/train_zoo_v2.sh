#!/usr/bin/env bash
# Trains (or resumes) the mean-scale zoo with the v2 recipe: random 256x256 crops,
# batch 2, Adam 1e-4 (ladder runs from lambda 0.02 up: 3e-5), divided by 10 for
# the last 20% of each run's target.
#
# Why 256x256 x 2: at 128x128 the hyperprior's z is only 2x2 per crop, so it
# trains on borders. From the shipped lambda=0.01 weights (step 14500), ~2750 steps
# of each recipe at equal compute (same pixels per step, one core each) gave on
# all 24 Kodak images: 128x128 x 8 -> 0.5639 bpp / 29.12 dB (loss 1.487),
# 256x256 x 2 -> 0.4291 bpp / 29.04 dB (loss 1.367); the shipped run: 0.5605 bpp
# / 29.13 dB (loss 1.481).
#
#   base    mbt2018 lambda=0.01 (y of 192 channels) to BASE_STEPS (150000).
#   ladder  the other lambdas (0.02 0.005 0.04 0.0025 0.08 0.001), each fine-tuned
#           from the lambda=0.01 run, CHUNK steps per lambda per round, until each
#           has LADDER_STEPS (25000).
#   families the scale-only (bmshj2018) and bits-back (mbt2018_bb) runs, each
#           fine-tuned from the mean-scale run of its lambda, CHUNK steps per run
#           per round, until each has FAMILY_STEPS (10000); then each bits-back
#           run's q(z | y_hat) is refitted to the rounded y (see `refit`). Start
#           it once the ladder's runs are far enough along to be worth starting from.
#
# Every command resumes from its run's train/ folder (SIGTERM saves a checkpoint
# and exports the weights), and from a fresh clone continues a v2 run from its
# shipped weights, so the script can be killed and started again at any point.
# One stage per core beats one process on both cores:
#
#   nohup setsid taskset -c 0 scripts/train_zoo_v2.sh base > base.log 2>&1 &
#   nohup setsid taskset -c 1 scripts/train_zoo_v2.sh ladder > ladder.log 2>&1 &
#
# Once the base run's gains have slowed (at 1e-5 from step 52486 it gained 0.007
# in Kodak loss over 11,500 steps), the undertrained ladder runs gain more per
# step: run two ladders instead, with disjoint LADDER lists (a run must never be
# trained by two processes at once):
#
#   LADDER="0.001 0.0025" nohup setsid taskset -c 0 scripts/train_zoo_v2.sh ladder > a.log 2>&1 &
#   LADDER="0.005 0.04 0.08" nohup setsid taskset -c 1 scripts/train_zoo_v2.sh ladder > b.log 2>&1 &
#
# Learning rate of the ladder's fine-tuned runs: HIGH_LAMBDA_LR (3e-5) from
# lambda 0.02 up, 1e-4 below. Measured 2026-12-04 on lambda=0.08 from its
# 4000-step weights, 2000 more steps each (Kodak loss, 24 images, start 6.6175):
# Adam 5e-4 -> 8.3671, 1e-4 -> 6.4745, 3e-5 -> 6.3953; and lambda=0.04 at 1e-4
# went 3.5705 (step 6062) -> 3.6107 (10062) -> 3.6408 (11331). The low lambdas
# still gain at 1e-4 (0.0025: 0.5096, 0.5074, 0.5050 at 1883, 5883, 9883).
#
# A wider y (NUM_LATENTS, default 64) for the ladder's runs: from lambda 0.04 up the
# 64-channel runs were stuck near 30.5 dB on Kodak; with 192 channels, widened
# from the base run, 0.08 reached 32.68 dB (loss 6.3953 -> 4.3847) in 10000 steps:
#
#   LADDER="0.08" NUM_LATENTS=192 HIGH_LAMBDA_LR=1e-4 CHUNK=2000 \
#     nohup setsid taskset -c 0 scripts/train_zoo_v2.sh ladder > wide.log 2>&1 &
#
# To give other work on the machine priority, `renice` is not enough: setsid puts
# each stage in its own scheduler autogroup, so lower the group instead:
#   for p in $(pgrep -f train_zoo_v2.sh); do echo 19 > /proc/$p/autogroup; done
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
TRAIN_GLOB=${TRAIN_GLOB:-../shared/data/train/*}
BASE_STEPS=${BASE_STEPS:-150000}
# Where the base run's learning rate drops to 1e-5. At batch 2 the lr=1e-4 phase
# stops paying off on Kodak well before 80% of BASE_STEPS (lambda=0.01: best at
# step 52486, worse at 61115 and 62525), so it can be moved earlier.
BASE_DECAY_AT=${BASE_DECAY_AT:-$((BASE_STEPS * 8 / 10))}
LADDER_STEPS=${LADDER_STEPS:-25000}
# Where the ladder's learning rate drops by 10 (default: at 80% of LADDER_STEPS).
# To train finished runs further, raise LADDER_STEPS and put the drop near the
# new end, e.g. LADDER_STEPS=31000 LADDER_DECAY_AT=29000: a scale-only run trained
# 10000 steps (8000 at 1e-4) from the 25000-step mean-scale runs at 0.02 and 0.04
# reached a lower Kodak loss than those runs (1.526 vs 1.597, 2.158 vs 2.256).
LADDER_DECAY_AT=${LADDER_DECAY_AT:-$((LADDER_STEPS * 8 / 10))}
HIGH_LAMBDA_LR=${HIGH_LAMBDA_LR:-3e-5}
CHUNK=${CHUNK:-4000}
LADDER=${LADDER:-0.02 0.005 0.04 0.0025 0.08 0.001}
# Hidden filters of the ladder's runs (NUM_FILTERS, default 64). The shipped 0.04
# and 0.08 mean-scale runs have 128 (widened from the 64-filter runs: at 0.08,
# 10000 steps took the Kodak loss from 3.4305 to 2.7481; see checkpoints/README.md).
# A ladder run with more filters than 64 starts from the widest mean-scale run of
# its own lambda (widening.widen), not from the base run:
#
#   LADDER="0.02" NUM_FILTERS=128 HIGH_LAMBDA_LR=1e-4 LADDER_STEPS=10000 \
#     nohup setsid taskset -c 0 scripts/train_zoo_v2.sh ladder > n128.log 2>&1 &
NUM_FILTERS=${NUM_FILTERS:-64}
FAMILIES=${FAMILIES:-bmshj2018 mbt2018_bb}
FAMILY_LAMBDAS=${FAMILY_LAMBDAS:-0.01 0.02 0.005 0.04 0.08 0.0025 0.001}
FAMILY_STEPS=${FAMILY_STEPS:-10000}
# The families' runs get the hidden filters and y channels of the mean-scale run
# they start from (the widest one shipped at their lambda).
# Channels of y of the ladder's runs (named ...-num_latents=M-...), at least the
# base run's 192. (The 64-channel runs of 0.001 and 0.0025 came from the 64-channel
# base, which is in git history.)
NUM_LATENTS=${NUM_LATENTS:-192}
# The base run: lambda=0.01 with a y of 192 channels (widened from the 64-channel
# run at its step 70000; at 15000 steps it had a lower Kodak loss, 1.1405 vs 1.235).
BASE=mbt2018-num_filters=64-num_latents=192-lmbda=0.01
BASE_LATENTS=192
# Compute dtype of the analysis/synthesis transforms (--train_compute_dtype).
# bfloat16 gave 90% of float32's gain per step (wide lambda=0.08 from step 12014,
# Kodak loss 4.2310, 2000 steps: 4.0201 vs 3.9979). On AMD EPYC machines it ran
# 1.4x the steps/s, so float32 is the default; on Intel Xeons with AMX-BF16 it
# runs 2x per core (2.23 -> 4.35 steps/s at 256x256 x 2, M = 192): set
# COMPUTE_DTYPE=bfloat16 there (see checkpoints/README.md). On Intel Xeons with
# AVX512-BF16 but no AMX it ran slower (0.96 against 1.36 steps/s, N = 128):
# keep float32 there (the trainer warns).
COMPUTE_DTYPE=${COMPUTE_DTYPE:-float32}
# What the synthesis reconstructs from in training (--train_synthesis_input):
# noisy (y plus uniform noise, as tfc trains) or rounded (the decoder's y_hat,
# straight-through gradient). 2000 rounded steps at Adam 3e-5 lowered the Kodak
# loss of the 128-filter mean-scale runs at 0.01-0.08 by 0.010-0.011 each, where
# noisy steps at 3e-5 had gained 0.0086 in 7000 steps (0.04); see
# checkpoints/README.md. On the 64-filter bits-back runs (round(y), then a
# refit) 2000 such steps gained 0.012-0.032 at 0.001-0.005.
SYNTHESIS_INPUT=${SYNTHESIS_INPUT:-rounded}
COMMON=(--patchsize 256 --batchsize 2 --train_glob "$TRAIN_GLOB"
        --train_compute_dtype "$COMPUTE_DTYPE" --train_synthesis_input "$SYNTHESIS_INPUT")

# "steps v2" of a run: its trained steps and whether its weights are a v2 lineage
# (a leg at 256x256 in lr_schedule); "0 v1" if it has no config yet.
state_of() {
  "$PYTHON" - "checkpoints/$1/config.json" <<'EOF'
import json, sys
try:
  config = json.load(open(sys.argv[1]))
except OSError:
  print(0, "v1"); sys.exit()
legs = config.get("lr_schedule", [])
v2 = any(isinstance(l, dict) and l.get("patchsize") == 256 for l in legs)
print(config.get("steps", 0) if v2 else 0, "v2" if v2 else "v1")
EOF
}

train() {  # run lambda last_step decay_at [family [init_run [lr [num_latents [num_filters]]]]]
  local name=$1 lmbda=$2 last=$3 decay=$4 family=${5:-mbt2018} origin=${6:-$BASE}
  local lr=${7:-1e-4} latents=${8:-64} filters=${9:-64} init=()
  read -r steps lineage < <(state_of "$name")
  if [[ ! -d "checkpoints/$name/train" ]]; then
    if [[ $lineage == v2 ]]; then init=(--init_from "$name"); else init=(--init_from "$origin"); fi
  fi
  mkdir -p "checkpoints/$name"
  echo "=== $(date +%T) $name from step $steps to $last (lr $lr, /10 from $decay) ${init[*]}"
  "$PYTHON" "examples/$family.py" train "${COMMON[@]}" --lr "$lr" --lambda "$lmbda" \
      --num_filters "$filters" --num_latents "$latents" --last_step "$last" --decay_at "$decay" "${init[@]}" \
      >> "checkpoints/$name/train.log" 2>&1 || { echo "!!! $name failed"; return 1; }
  tail -n 2 "checkpoints/$name/train.log"
}

# The run name of family $1 at lambda $2 with $3 latent channels (64: none given)
# and $4 hidden filters.
run_of() {
  if [[ ${3:-64} == 64 ]]; then echo "$1-num_filters=${4:-64}-lmbda=$2"
  else echo "$1-num_filters=${4:-64}-num_latents=$3-lmbda=$2"; fi
}

# The widest mean-scale run shipped (or training) at lambda $1: most hidden
# filters, then most y channels (version sort puts 128 after 64 and a
# "num_latents=" name after the plain one).
widest_mean_scale_run() {
  (cd checkpoints && ls -d "mbt2018-num_filters="*"-lmbda=$1" 2>/dev/null | sort -V | tail -n 1)
}

# "filters latents" of run name $1 (latents 64 when the name gives none).
widths_of() {
  local filters latents
  filters=$(sed -n 's/.*num_filters=\([0-9]*\).*/\1/p' <<< "$1")
  latents=$(sed -n 's/.*num_latents=\([0-9]*\).*/\1/p' <<< "$1")
  echo "${filters:-64} ${latents:-64}"
}

# Fits the amortized q(z | y_hat) of bits-back run $1 to the decoder's rounded y
# (`examples/mbt2018_bb.py refit_posterior`), unless its weights have a refit:
# training computes q from the continuous y, and at lambda 0.001 coding with
# the trained q cost 0.221 net bpp on Kodak against 0.105 after the refit.
refit() {
  local name=$1
  "$PYTHON" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("posterior_refit") else 1)' \
      "checkpoints/$name/config.json" && return 0
  echo "=== $(date +%T) $name: refit q(z | y_hat)"
  "$PYTHON" examples/mbt2018_bb.py refit_posterior "$name" --train_glob "$TRAIN_GLOB" \
      >> "checkpoints/$name/train.log" 2>&1 || { echo "!!! $name refit failed"; return 1; }
  tail -n 1 "checkpoints/$name/train.log"
}

# Round robin over run specs "family:lambda:origin_run[:lr[:num_latents[:num_filters]]]": CHUNK
# more steps for each run below `total` steps per round, until every run has `total`.
rounds() {  # total decay_at spec...
  local total=$1 decay=$2 left spec family lmbda origin lr latents filters name steps target
  shift 2
  while :; do
    left=0
    for spec in "$@"; do
      IFS=: read -r family lmbda origin lr latents filters <<< "$spec"
      name=$(run_of "$family" "$lmbda" "${latents:-64}" "${filters:-64}")
      read -r steps _ < <(state_of "$name")
      (( steps >= total )) && continue
      left=1
      target=$(( steps + CHUNK < total ? steps + CHUNK : total ))
      train "$name" "$lmbda" "$target" "$decay" "$family" "$origin" \
          "${lr:-1e-4}" "${latents:-64}" "${filters:-64}"
    done
    (( left )) || break
  done
}

specs=()
case ${1:-} in
  base)
    train "$BASE" 0.01 "$BASE_STEPS" "$BASE_DECAY_AT" mbt2018 "$BASE" 1e-4 "$BASE_LATENTS" 64 ;;
  ladder)
    for lmbda in $LADDER; do
      lr=1e-4
      awk "BEGIN { exit !($lmbda >= 0.02) }" && lr=$HIGH_LAMBDA_LR
      origin=$BASE
      if (( NUM_FILTERS > 64 )); then
        origin=$(widest_mean_scale_run "$lmbda")
        [[ -n $origin ]] || origin=$BASE
      fi
      specs+=("mbt2018:$lmbda:$origin:$lr:$NUM_LATENTS:$NUM_FILTERS")
    done
    rounds "$LADDER_STEPS" "$LADDER_DECAY_AT" "${specs[@]}"
    echo "=== $(date +%T) ladder done" ;;
  families)
    for lmbda in $FAMILY_LAMBDAS; do
      origin=$(widest_mean_scale_run "$lmbda")
      [[ -n $origin ]] || { echo "no mean-scale run at lambda $lmbda" >&2; exit 2; }
      read -r filters latents < <(widths_of "$origin")
      for family in $FAMILIES; do
        specs+=("$family:$lmbda:$origin:1e-4:$latents:$filters")
      done
    done
    rounds "$FAMILY_STEPS" $((FAMILY_STEPS * 8 / 10)) "${specs[@]}"
    for spec in "${specs[@]}"; do
      IFS=: read -r family lmbda origin lr latents filters <<< "$spec"
      [[ $family == mbt2018_bb ]] || continue
      refit "$(run_of "$family" "$lmbda" "$latents" "$filters")"
    done
    echo "=== $(date +%T) families done" ;;
  *)
    echo "usage: $0 base|ladder|families" >&2; exit 2 ;;
esac
