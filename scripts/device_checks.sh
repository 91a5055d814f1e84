#!/bin/bash
# Issue 33's measurements on a lent GPU machine, in two calls of the device tool back to back (the machine
# stays warm ~30 s between calls; scripts/device_env.sh says why the Inception weights need two). Estimated,
# never run there yet: ~4 min for the first, ~6 for the second (the CPU half of the parity), so both fit one
# session's 15 minutes of device time with a start:
#
#   here, once:  GAN_DATA_ROOT=... TORCH_HOME=... scripts/device_pack.sh
#   call 1:      bash scripts/device_checks.sh train      carry .dev/whl .dev/data .dev/inception1   timeout_s 420
#   call 2:      bash scripts/device_checks.sh evaluate   carry .dev/whl .dev/inception2             timeout_s 540
#
# The working tree travels with each call and must stay under 64 MiB with what it carries (call 1: ~12 MB of
# code and docs + 51 MB of .dev): artifacts/ (140 MB) must stay behind; nothing here reads it (the proxy
# classifier is the one embedded in runtime/embedded/). Earlier leases left it behind without recording how; one
# way, not yet tried with the device tool: `git sparse-checkout set --no-cone '/*' '!/artifacts/'` before the
# calls, `git sparse-checkout disable` after.
# train:    the CUDA parity test of the proxy classifier; bench/train_speed.py at batch 64 and 512 (steps/s that
#           barely change with the batch mean a launch-bound loop); then `train-gan wgan_gp --epochs 600`
#           (MLP, no periodic evaluation) until TRAIN_SECONDS, and its seconds per epoch projected to 600.
# evaluate: every test of tests/integration/test_evaluation_device.py (the CUDA ones included); P0 and proxy
#           of P0_SAMPLES untrained-generator samples on CUDA with its real reference computed anew (all timed);
#           CPU vs CUDA features and metrics on the same PARITY_SAMPLES samples and the 10,000 real images.
# Each writes JSON and logs to $OUT. DEVICE=cpu runs the same steps here, as a check of this script.
set -u
STEP=${1:?train or evaluate}
OUT=${OUT:?set OUT to the folder that receives the results}
DEVICE=${DEVICE:-cuda}
TRAIN_SECONDS=${TRAIN_SECONDS:-150}
P0_SAMPLES=${P0_SAMPLES:-10000}
PARITY_SAMPLES=${PARITY_SAMPLES:-1000}
source scripts/device_env.sh || exit 1
mkdir -p "$OUT"
{ date -u; nvidia-smi -L 2>/dev/null; python3 -c "import torch, typer; print('torch', torch.__version__, 'typer',
typer.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"; } | tee "$OUT/$STEP.env.txt"
python3 -c "import training.cli, evaluation.cli, export.cli" || exit 1

case $STEP in
train)
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/integration/test_evaluation_device.py -k Classifier \
    2>&1 | tee "$OUT/train.pytest.log"
  for batch in ${SPEED_BATCHES:-64 512}; do
    timeout 120 python3 bench/train_speed.py --device "$DEVICE" --batch-size $batch --images $((batch * 100)) \
      --repeats 2 > "$OUT/train_speed_b$batch.json"
    cat "$OUT/train_speed_b$batch.json"
  done
  run=/tmp/runs/wgan_gp_mlp
  rm -rf "$run"
  timeout -s TERM "$TRAIN_SECONDS" python3 -c \
    'import sys; sys.argv[0] = "train-gan"; from training.cli import main; main()' \
    wgan_gp --epochs 600 --device "$DEVICE" --eval-protocol none --run-dir "$run" -q > "$OUT/train_600.log" 2>&1
  echo "train-gan exit $? (124: stopped at TRAIN_SECONDS)" >> "$OUT/train_600.log"
  cp "$run/metrics.jsonl" "$OUT/train_600.metrics.jsonl" 2>/dev/null
  python3 - "$run/metrics.jsonl" <<'PY' | tee "$OUT/train_600.json"
import json, statistics, sys
records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
seconds = [r["epoch_seconds"] for r in records]
steady = statistics.median(seconds[1:] or seconds)  # the first epoch pays for CUDA's start
print(json.dumps({"epochs_done": len(records), "device": records[-1].get("device"), "first_epoch_s": seconds[0],
                  "median_epoch_s": round(steady, 3), "projected_600_epochs_min": round(600 * steady / 60, 2),
                  "target_min": 10}))
PY
  ;;
evaluate)
  [ "$INCEPTION_READY" = 1 ] || { echo "no Inception weights: run the train step first (it keeps .dev/inception1)"; exit 1; }
  timeout 200 python3 -m pytest -q -p no:cacheprovider tests/integration/test_evaluation_device.py \
    2>&1 | tee "$OUT/evaluate.pytest.log"
  timeout 200 python3 bench/eval_speed.py --protocols proxy,p0 --device "$DEVICE" --inception torch \
    --n "$P0_SAMPLES" --cold-reference > "$OUT/eval_speed_$DEVICE.json"
  cat "$OUT/eval_speed_$DEVICE.json"
  timeout 330 python3 bench/eval_speed.py --protocols p0 --device "$DEVICE,cpu" --inception torch \
    --n "$PARITY_SAMPLES" --cold-reference > "$OUT/eval_parity_${DEVICE}_cpu.json"
  cat "$OUT/eval_parity_${DEVICE}_cpu.json"
  ;;
*)
  echo "device_checks.sh: the step is train or evaluate, not $STEP"; exit 2 ;;
esac
