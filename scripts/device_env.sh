# Source on a bare device machine, from the repository root:  source scripts/device_env.sh
# Installs what scripts/device_bundle.py packed into .device/ (the parts that were carried:
# common/ and gpu/ or train/) into $HUMANSPLAT_DEVICE_SITE (default /tmp/humansplat-site),
# without network, restores the Anny model cache, and exports PYTHONPATH so that this
# repository's humansplat and those packages are imported. Idempotent (a second source is
# quick). Where there is no .device/ (a set-up CPU machine: the smoke runs) it only puts the
# repository on PYTHONPATH.
_hs_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_hs_bundle="${HUMANSPLAT_DEVICE_BUNDLE:-$_hs_root/.device}"
_hs_site="${HUMANSPLAT_DEVICE_SITE:-/tmp/humansplat-site}"
_hs_py="${PYTHON:-python3}"
export PYTHONPATH="$_hs_root${PYTHONPATH:+:$PYTHONPATH}"
if [ -d "$_hs_bundle/common" ]; then
  mkdir -p "$_hs_site"
  export PYTHONPATH="$_hs_root:$_hs_site${PYTHONPATH#"$_hs_root"}"
  for _hs_w in "$_hs_bundle"/*/wheels/*.whl; do
    [ -f "$_hs_w" ] || continue
    _hs_name="$(basename "$_hs_w")"
    [ -f "$_hs_site/.installed-$_hs_name" ] && continue
    "$_hs_py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$_hs_site" "$_hs_w" >/dev/null 2>&1 \
      && touch "$_hs_site/.installed-$_hs_name" \
      || echo "device_env: could not install $_hs_name" >&2
  done
  if [ -f "$_hs_bundle/common/anny.tar.xz" ] && [ ! -f "$_hs_site/.installed-anny" ]; then
    # Python's tarfile rather than tar -J: the image need not have xz
    "$_hs_py" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], \
filter='data')" "$_hs_bundle/common/anny.tar.xz" "$_hs_site" && touch "$_hs_site/.installed-anny"
  fi
  if [ -f "$_hs_bundle/common/anny-cache.json" ]; then
    "$_hs_py" "$_hs_root/scripts/device_bundle.py" --restore "$_hs_bundle/common" >/dev/null \
      || echo "device_env: could not restore the Anny cache" >&2
  fi
  if [ -f "$_hs_bundle/common/astronaut_mediapipe.npz" ]; then
    export HUMANSPLAT_MEDIAPIPE_REPLAY="$_hs_bundle/common/astronaut_mediapipe.npz"
  fi
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
unset _hs_root _hs_bundle _hs_site _hs_py _hs_w _hs_name
