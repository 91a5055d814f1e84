#!/usr/bin/env bash
# Export a finished run to artifacts/<preset>_mlp and record its evaluations in the manifest:
# proxy (plain and DRS 20 %) and P0 for each given sampling seed (plain; DRS 20 % with seed 0 when asked).
#   scripts/evaluate_shipped.sh PRESET ema|raw "P0_SEEDS" [drs]    e.g.  scripts/evaluate_shipped.sh wgan_gp_cond ema "0 1 2" drs
# ema|raw: which generator to ship (raw when the run's EMA still lags it, measured with the proxy).
set -euo pipefail
preset=$1; weights=$2; seeds=$3; drs=${4:-}
artifact=artifacts/${preset}_mlp
raw=(); [[ $weights == raw ]] && raw=(--raw-generator)
[[ -f $artifact/manifest.json ]] || export-gan "runs/ship/$preset" --format onnx --out "$artifact" "${raw[@]}"
eval-gan score "$artifact" --protocol proxy --record --quiet
eval-gan score "$artifact" --protocol proxy --drs-rate 0.2 --record --quiet
for seed in $seeds; do
  eval-gan score "$artifact" --protocol p0 --seed "$seed" --record --quiet
done
[[ -z $drs ]] || eval-gan score "$artifact" --protocol p0 --drs-rate 0.2 --seed 0 --record --quiet
