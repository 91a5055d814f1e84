#!/usr/bin/env bash
# Export a finished run to artifacts/<preset>_mlp and record its evaluations in the manifest:
# proxy (plain and DRS 20 %) and P0 for each given sampling seed (plain; DRS 20 % with seed 0 when asked).
#   scripts/evaluate_shipped.sh PRESET "P0_SEEDS" [drs]     e.g.  scripts/evaluate_shipped.sh wgan_gp_cond "0 1 2" drs
set -euo pipefail
preset=$1; seeds=$2; drs=${3:-}
artifact=artifacts/${preset}_mlp
[[ -f $artifact/manifest.json ]] || export-gan "runs/ship/$preset" --format onnx --out "$artifact"
eval-gan score "$artifact" --protocol proxy --record --quiet
eval-gan score "$artifact" --protocol proxy --drs-rate 0.2 --record --quiet
for seed in $seeds; do
  eval-gan score "$artifact" --protocol p0 --seed "$seed" --record --quiet
done
[[ -z $drs ]] || eval-gan score "$artifact" --protocol p0 --drs-rate 0.2 --record --quiet
