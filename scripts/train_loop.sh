#!/usr/bin/env bash
# Train in chunks so a long CPU run survives session cuts and picks up newly generated shards:
# each chunk resumes from the output folder's last checkpoint and stops (checkpointed) after
# CHUNK_MIN minutes.  Usage: scripts/train_loop.sh OUTPUT_DIR [extra `humansplat train` args]
set -euo pipefail
out="$1"; shift
chunk="${CHUNK_MIN:-15}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OMP_WAIT_POLICY=PASSIVE
while true; do
  res=$(python -m humansplat.cli train --config configs/tiny.yaml -o "$out" \
        --max-minutes "$chunk" --quiet "$@" | tail -n 1)
  echo "$(date +%T) $res"
  steps=$(python -c "import json,sys; print(json.loads(sys.argv[1])['steps'])" "$res")
  max=$(python -c "import json; print(json.load(open('$out/config.json'))['run']['max_steps'])")
  [ "$steps" -ge "$max" ] && break
done
