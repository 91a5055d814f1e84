#!/usr/bin/env bash
# Export a finished run to artifacts/<variant>_<arch> and record its evaluations in the manifest:
# proxy (plain and DRS 20 %) and P0 for each given sampling seed (plain; DRS 20 % with seed 0 when asked).
#   scripts/evaluate_shipped.sh RUN ema|raw "P0_SEEDS" [drs] [match]
#   e.g.  scripts/evaluate_shipped.sh wgan_gp_cond_mlp ema "0 1 2" drs
# match: export with --match-intensities (a tone curve fitted to MNIST train's pixel histogram).
# RUN is a folder under runs/ship/ (scripts/train_shipped.sh NAME trains runs/ship/NAME); ema|raw: which generator to ship (raw when the run's EMA still lags it,
# measured with the proxy). An existing artifact is kept: `rm -rf` it first to re-export.
set -euo pipefail
run=runs/ship/$1; weights=$2; seeds=$3; drs=; match=()
for option in "${@:4}"; do
  case $option in
    drs) drs=1 ;;
    match) match=(--match-intensities) ;;
    *) echo "evaluate_shipped.sh: error: unknown option $option (drs or match)" >&2; exit 2 ;;
  esac
done
artifact=artifacts/$(python -c 'import sys; from pathlib import Path; from training.config import load_run_config
c = load_run_config(Path(sys.argv[1])); print(f"{c.variant}_{c.architecture_tag}")' "$run")
raw=(); [[ $weights == raw ]] && raw=(--raw-generator)
[[ -f $artifact/manifest.json ]] || export-gan "$run" --format onnx --out "$artifact" "${raw[@]}" "${match[@]}"
eval-gan score "$artifact" --protocol proxy --record --quiet
eval-gan score "$artifact" --protocol proxy --drs-rate 0.2 --record --quiet
for seed in $seeds; do
  eval-gan score "$artifact" --protocol p0 --seed "$seed" --record --quiet
done
[[ -z $drs ]] || eval-gan score "$artifact" --protocol p0 --drs-rate 0.2 --seed 0 --record --quiet
