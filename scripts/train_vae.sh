#!/usr/bin/env bash
# Trains bls2017 VAE runs (Bayesian AC, iREC) from the shipped 64-filter VAE
# (sigma2 = 0.001), one run per likelihood variance in SIGMA2S, each to STEPS
# steps; each run then fits its coding tables (Bayesian AC).
#
# Other variances give sample-based coding (iREC) a rate-distortion curve: the
# VAE's rate is fixed by its training sigma2 (smaller sigma2 weights distortion
# more: higher rate):
#
#   nohup setsid taskset -c 1 scripts/train_vae.sh > vae.log 2>&1 &
#
# A wider VAE (NUM_FILTERS > 64) starts from the same run, widened
# (`models.widening`: it starts out computing what the 64-filter VAE does, and
# its new latents start unused); on Intel Xeons with AMX-BF16 set
# COMPUTE_DTYPE=bfloat16 (128 filters: about 5 steps/s on one core):
#
#   NUM_FILTERS=128 SIGMA2S=0.001 STEPS=20000 COMPUTE_DTYPE=bfloat16 \
#     nohup setsid taskset -c 0 scripts/train_vae.sh > vae128.log 2>&1 &
#
# The learning rate drops to 1e-5 at DECAY_AT (default: 80% of STEPS); to train a
# run further later, raise STEPS and DECAY_AT together.
# Resumes like every trainer (train/ folder, or its exported weights on a fresh clone).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
TRAIN_GLOB=${TRAIN_GLOB:-../shared/data/train/*}
SIGMA2S=${SIGMA2S:-0.003 0.0003 0.01}
STEPS=${STEPS:-3000}
DECAY_AT=${DECAY_AT:-$((STEPS * 8 / 10))}
NUM_FILTERS=${NUM_FILTERS:-64}
COMPUTE_DTYPE=${COMPUTE_DTYPE:-float32}
BASE=bls2017_vae-num_filters=64-sigma2=0.001
for s in $SIGMA2S; do
  name="bls2017_vae-num_filters=$NUM_FILTERS-sigma2=$s"
  steps=$("$PYTHON" -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get("steps", 0))
except OSError: print(0)' "checkpoints/$name/config.json")
  if (( steps >= STEPS )); then echo "=== $name has $steps steps"; continue; fi
  if [[ -d "checkpoints/$name/train" ]]; then init=()
  elif (( steps > 0 )); then init=(--init_from "$name")
  else init=(--init_from "$BASE"); fi
  mkdir -p "checkpoints/$name"
  echo "=== $(date +%T) $name to step $STEPS (1e-5 from $DECAY_AT) ${init[*]}"
  "$PYTHON" examples/bayesian_ac.py train --num_filters "$NUM_FILTERS" --sigma2 "$s" \
      --patchsize 128 --batchsize 8 --lr 1e-4 --last_step "$STEPS" \
      --decay_at "$DECAY_AT" --train_compute_dtype "$COMPUTE_DTYPE" \
      --train_glob "$TRAIN_GLOB" "${init[@]}" \
      >> "checkpoints/$name/train.log" 2>&1 || { echo "!!! $name failed"; exit 1; }
  tail -n 3 "checkpoints/$name/train.log"
done
echo "=== $(date +%T) done"
