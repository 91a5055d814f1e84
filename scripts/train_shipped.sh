#!/usr/bin/env bash
# How the shipped MLP models were trained on a 2-core CPU: every preset with the course template's
# generator, the seeds' hyperparameters, EMA 0.999 of G, one thread per run so two runs share the cores.
# Re-running resumes each run from its last checkpoint (runs/ship/<preset>).
#   scripts/train_shipped.sh EPOCHS PRESET...
set -euo pipefail
epochs=$1; shift
export OMP_NUM_THREADS=1
for preset in "$@"; do
  run=runs/ship/$preset
  if [[ -f $run/checkpoint.safetensors ]]; then
    train-gan --resume "$run" --epochs "$epochs" --quiet
  else
    train-gan "$preset" --run-dir "$run" --epochs "$epochs" --ema-decay 0.999 --eval-every 2 \
      --eval-protocol proxy --eval-samples 10000 --device cpu --quiet
  fi
done
