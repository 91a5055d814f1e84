#!/bin/bash
# Packs .dev/ (ignored by git) with what the lent GPU machine lacks, for scripts/device_env.sh there: run it
# here, where pip reaches the package registry, MNIST is in $GAN_DATA_ROOT and the Inception weights in
# $TORCH_HOME. .dev/inception1 goes with the first call of the device tool, .dev/inception2 with the second
# (scripts/device_checks.sh says which call carries what).
set -euo pipefail
: "${GAN_DATA_ROOT:?set GAN_DATA_ROOT to the folder holding MNIST/raw}" "${TORCH_HOME:?set TORCH_HOME}"
grep -qx '/.dev/' .git/info/exclude 2>/dev/null || echo /.dev/ >> .git/info/exclude
rm -rf .dev && mkdir -p .dev/whl .dev/data .dev/inception1 .dev/inception2
version=$(python3 -c 'import importlib.metadata as m; print(m.version("pytorch-fid"))')
python3 -m pip download -q --no-deps --only-binary=:all: -d .dev/whl "pytorch-fid==$version"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  gzip -c "$GAN_DATA_ROOT/MNIST/raw/$f" > ".dev/data/$f.gz"
done
weights=$TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth
gzip -1 -c "$weights" > .dev/weights.gz  # 96 MB -> 81 MB, in two halves of 41 MB
split -n 2 -d .dev/weights.gz .dev/weights.gz. && rm .dev/weights.gz
mv .dev/weights.gz.00 .dev/inception1/ && mv .dev/weights.gz.01 .dev/inception2/
sha256sum "$weights" | tee .dev/inception1/SHA256 > .dev/inception2/SHA256
du -sh .dev/*
