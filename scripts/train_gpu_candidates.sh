#!/bin/bash
# Headline candidates trained side by side on one CUDA GPU until a deadline, then reduced to what
# export-gan needs:
#
#   DEADLINE=460 OUT=runs/gpu_out scripts/train_gpu_candidates.sh [NAME="TRAIN-GAN OPTIONS" ...]
#
# Each run is `train-gan --config configs/wgan_gp_cond_conv_w96.toml --epochs 2000 OPTIONS` (the shipped
# GPU recipe; its OPTIONS state how a candidate differs from it), stopped by SIGTERM at the deadline
# (train-gan then saves a mid-epoch checkpoint). With no candidates named it trains the three of the first
# lent H200 (2026-11-26), which made wgan_gp_cond_conv_w96 (w96_b128: the recipe itself):
# w64="--conv-width 64 --batch-size 64" w64_ema9999="--conv-width 64 --batch-size 64 --ema-decay 0.9999" w96_b128=
# The third lease (2026-11-27, the deeper critics of the README) ran
#   DEADLINE=535 KEEP=2 OUT=$OUT scripts/train_gpu_candidates.sh d2="--critic-depth 2" d3="--critic-depth 3" \
#     d2_decay="--critic-depth 2 --epochs 100 --lr-decay-start 60"
# (then each run was `... --config configs/wgan_gp_cond_conv.toml --precision fp32 --eval-every 10 --epochs 2000`
# with --conv-width 96 --batch-size 128 in its OPTIONS: the same resolved configs). A run
# folder that already holds a checkpoint is resumed, so calling again on the same machine continues.
# OUT receives, for the KEEP (default: all) runs whose last proxy evaluation has the highest
# min(precision k3, recall k3), the EMA generator + critic (no optimizer state or raw G: such a file
# cannot be resumed, only exported and scored) in parts of at most 15 MB, and a tarball of all runs'
# configs, metrics, grids and logs. The machine this ran on returned files of at most 16 MiB, 64 MiB
# in all: keep the full checkpoint of a run you mean to continue (split it the same way). Back on a
# CPU machine: tar xzf runs_meta.tar.gz; cat w96_b128.safetensors.part* > runs/gpu/w96_b128/checkpoint.safetensors;
# export-gan runs/gpu/w96_b128.
#
# On that machine (torch 2.11, no internet), pytorch-fid's wheel and MNIST were carried in .dev/ of this
# checkout (scripts/device_pack.sh makes it; scripts/device_env.sh sets it up there).
# That machine also took at most 64 MiB of working tree, which artifacts/ alone exceeds: it was left
# out of the copy (the proxy evaluation during training reads the classifier embedded in runtime/embedded/).
set -u
DEADLINE=${DEADLINE:-420}
OUT=${OUT:?set OUT to the folder that receives the results}
RUNS=${RUNS:-runs/gpu}
mkdir -p "$OUT" "$RUNS/logs"
source scripts/device_env.sh || exit 1
export OMP_NUM_THREADS=4
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" || exit 1

train() {  # NAME OPTION...: one candidate, in the background of the caller
  local name=$1; shift
  local start=(--config configs/wgan_gp_cond_conv_w96.toml --run-dir "$RUNS/$name"
               --epochs 2000 "$@")  # until the deadline; a candidate's own --epochs (with --lr-decay-start) wins
  [ -f "$RUNS/$name/checkpoint.safetensors" ] && start=(--resume "$RUNS/$name")
  timeout -s TERM "$DEADLINE" python3 -c 'import sys; sys.argv[0] = "train-gan"; from training.cli import main; main()' \
    "${start[@]}" --device "${DEVICE:-cuda}" -q > "$RUNS/logs/$name.log" 2>&1
  echo "$name exit $?" >> "$RUNS/logs/$name.log"
}
[ $# -gt 0 ] || set -- w64="--conv-width 64 --batch-size 64" \
  w64_ema9999="--conv-width 64 --batch-size 64 --ema-decay 0.9999" w96_b128=
for candidate in "$@"; do
  train "${candidate%%=*}" ${candidate#*=} &
done
wait

RUNS=$RUNS OUT=$OUT KEEP=${KEEP:-$#} python3 - <<'PY'
import json, os, pathlib
from safetensors import safe_open
from safetensors.torch import save_file
out = pathlib.Path(os.environ["OUT"])
runs = {}
for run in sorted(p for p in pathlib.Path(os.environ["RUNS"]).iterdir() if (p / "checkpoint.safetensors").exists()):
    with safe_open(str(run / "checkpoint.safetensors"), "pt") as f:
        state = json.loads(f.metadata()["state_json"])
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "proxy/fid" in line]
    print(run.name, "epoch", state["epoch"], "step", state["step"], "proxy (epoch, FID, P k3, R k3):",
          [(e["epoch"], round(e["proxy/fid"], 3), e["proxy/precision_k3"], e["proxy/recall_k3"]) for e in evals])
    runs[run] = min(evals[-1]["proxy/precision_k3"], evals[-1]["proxy/recall_k3"]) if evals else 0.0
for run in sorted(runs, key=runs.get, reverse=True)[: int(os.environ["KEEP"])]:
    with safe_open(str(run / "checkpoint.safetensors"), "pt") as f:
        kept = {k: f.get_tensor(k) for k in f.keys() if k.startswith(("ema.", "critic."))}
        save_file(kept, str(out / f"{run.name}.safetensors"), metadata=f.metadata())
    print("returned", run.name)
PY
for f in "$OUT"/*.safetensors; do
  [ "$(stat -c %s "$f")" -gt 16000000 ] && split -b 15000000 -d "$f" "$f.part" && rm "$f"
done
tar czf "$OUT/runs_meta.tar.gz" --exclude=checkpoint.safetensors --exclude=tensorboard "$RUNS"
tail -n 2 "$RUNS"/logs/*.log
ls -la "$OUT"
