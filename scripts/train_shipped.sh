#!/usr/bin/env bash
# Train shipped models from their recipes: configs/NAME.toml is everything that made artifacts/NAME
# (its preset and what differs from it, epochs included). What belongs to the machine stays here: the
# device (DEVICE, default cpu: every shipped model but wgan_gp_cond_conv_w96, which took cuda) and one
# thread per run, so that two runs share a 2-core CPU. Re-running resumes each run from its last checkpoint
# (runs/ship/NAME) up to the epochs its config now says.
#   scripts/train_shipped.sh NAME...
#   e.g.  scripts/train_shipped.sh vanilla_mlp wgan_gp_mlp
#         DEVICE=cuda scripts/train_shipped.sh wgan_gp_cond_conv_w96
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: scripts/train_shipped.sh NAME... (names: $(cd configs && ls *.toml | sed 's/\.toml$//' | tr '\n' ' '))" >&2; exit 2; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
device=${DEVICE:-cpu}
for name in "$@"; do
  config=configs/$name.toml
  [[ -f $config ]] || { echo "train_shipped.sh: error: no $config" >&2; exit 2; }
  run=runs/ship/$name
  if [[ -f $run/checkpoint.safetensors ]]; then
    epochs=$(train-gan --config "$config" --dry-run | python -c 'import json, sys; print(json.load(sys.stdin)["epochs"])')
    train-gan --resume "$run" --epochs "$epochs" --device "$device" --quiet
  else
    train-gan --config "$config" --run-dir "$run" --device "$device" --quiet
  fi
done
