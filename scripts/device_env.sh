# Sourced on a lent GPU machine (no internet, torch preinstalled) by the scripts that run there; sets up what
# scripts/device_pack.sh put in .dev/ of this checkout, where present:
#   .dev/whl/*.whl                 wheels the machine lacks (pytorch-fid), installed into /tmp/site
#   .dev/data/*.gz                 MNIST's raw files -> /tmp/data (GAN_DATA_ROOT)
#   .dev/inception1/, inception2/  pytorch-fid's Inception weights, gzipped and cut in two: 96 MB do not fit in
#                                  one call of the device tool (64 MiB of working tree), so each call brings one
#                                  part, kept in /tmp/dev-parts while the machine stays warm; with both there,
#                                  the weights are rebuilt, checked against their SHA-256, in /tmp/torch-home
# and a shim for the machine's SciPy >= 1.18, whose sqrtm no longer takes pytorch-fid's disp=False (a normal
# install pins scipy < 1.18 instead; see pyproject.toml). INCEPTION_READY=1 once the weights are in place.
INCEPTION_WEIGHTS=pt_inception-2015-12-05-6726825d.pth
INCEPTION_READY=0
if [ -d .dev ]; then
  mkdir -p /tmp/site /tmp/dev-parts /tmp/torch-home/hub/checkpoints
  python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .dev/whl/*.whl || return 1
  export PYTHONPATH=/tmp/site:$PWD
  cat > /tmp/site/sitecustomize.py <<'PY'
import scipy.linalg as _linalg
_sqrtm = _linalg.sqrtm
def _sqrtm_disp(a, disp=True, **kw):
    root = _sqrtm(a, **kw)
    return root if disp else (root, 0.0)
_linalg.sqrtm = _sqrtm_disp
PY
  if [ -d .dev/data ]; then
    mkdir -p /tmp/data/MNIST/raw
    for f in .dev/data/*.gz; do gunzip -c "$f" > "/tmp/data/MNIST/raw/$(basename "$f" .gz)"; done
  fi
  export GAN_DATA_ROOT=/tmp/data GAN_CACHE_DIR=/tmp/evalcache TORCH_HOME=/tmp/torch-home
  cp .dev/inception*/* /tmp/dev-parts/ 2>/dev/null
  weights=/tmp/torch-home/hub/checkpoints/$INCEPTION_WEIGHTS
  if [ ! -f "$weights" ] && [ -f /tmp/dev-parts/weights.gz.00 ] && [ -f /tmp/dev-parts/weights.gz.01 ]; then
    cat /tmp/dev-parts/weights.gz.0? | gunzip > "$weights.tmp" && mv "$weights.tmp" "$weights"
  fi
  if [ -f "$weights" ]; then
    (cd "$(dirname "$weights")" && sed "s/ .*/  $INCEPTION_WEIGHTS/" /tmp/dev-parts/SHA256 | sha256sum -c --quiet) \
      && INCEPTION_READY=1 || { echo "the rebuilt Inception weights do not match their SHA-256"; rm -f "$weights"; }
  fi
fi
export PYTHONUNBUFFERED=1
