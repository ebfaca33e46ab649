#!/usr/bin/env bash
# Fine-tunes the shipped bls2017 VAE (sigma2 = 0.001) at other likelihood
# variances, one run per value, so sample-based coding (iREC) gets a rate-distortion
# curve: the VAE's rate is fixed by its training sigma2 (smaller sigma2 weights
# distortion more: higher rate). Each run then fits its coding tables (Bayesian AC).
#
#   nohup setsid taskset -c 1 scripts/train_vae_sigma2.sh > vae.log 2>&1 &
#
# Resumes like every trainer (train/ folder, or its exported weights on a fresh clone).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
TRAIN_GLOB=${TRAIN_GLOB:-../shared/data/train/*}
SIGMA2S=${SIGMA2S:-0.003 0.0003 0.01}
STEPS=${STEPS:-3000}
BASE=bls2017_vae-num_filters=64-sigma2=0.001
for s in $SIGMA2S; do
  name="bls2017_vae-num_filters=64-sigma2=$s"
  steps=$("$PYTHON" -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get("steps", 0))
except OSError: print(0)' "checkpoints/$name/config.json")
  if (( steps >= STEPS )); then echo "=== $name has $steps steps"; continue; fi
  if [[ -d "checkpoints/$name/train" ]]; then init=()
  elif (( steps > 0 )); then init=(--init_from "$name")
  else init=(--init_from "$BASE"); fi
  mkdir -p "checkpoints/$name"
  echo "=== $(date +%T) $name to step $STEPS ${init[*]}"
  "$PYTHON" examples/bayesian_ac.py train --num_filters 64 --sigma2 "$s" \
      --patchsize 128 --batchsize 8 --lr 1e-4 --last_step "$STEPS" \
      --train_glob "$TRAIN_GLOB" "${init[@]}" \
      >> "checkpoints/$name/train.log" 2>&1 || { echo "!!! $name failed"; exit 1; }
  tail -n 3 "checkpoints/$name/train.log"
done
echo "=== $(date +%T) done"
