#!/usr/bin/env bash
# Train the tiny model on one fresh GPU machine in <= 9 minutes, then evaluate it against the
# bundled checkpoint (issue 17). README "GPU" says how to run it on a lent device machine.
#
#   bash scripts/device_train.sh OUT            # on the GPU machine (16 cores, no network)
#   bash scripts/device_train.sh --smoke OUT    # micro sizes on a CPU (< 3 minutes)
#
# Steps, each skipped when a rerun finds it done (state in $WORK, default
# /tmp/humansplat-device-train[-smoke]; training resumes from its last checkpoint):
#   env        source scripts/device_env.sh (the carried .device/ bundle: anny + its cache,
#              the perceptual loss's weights; see scripts/device_bundle.py)
#   synth      the held-out test split, then as many training subjects as fit in SYNTH_S
#              seconds, one process per core (`humansplat data synth`, sharded)
#   calibrate  the first CAL_STEPS steps of the run (inside the warm-up, where the schedule
#              does not depend on the step budget) to measure seconds per step
#   train      resumes to the step count that fits in what is left of TRAIN_S
#   eval       `humansplat eval` of the new model, the bundled checkpoint and the prior-only
#              baselines on the test split
#   pack       OUT/train.json (settings, steps, timings), OUT/eval.json + eval.md, and the
#              checkpoint (pipeline.json + the EMA model) as OUT/checkpoint.tar.NN pieces of
#              15 MiB (the run tool returns files of at most 16 MiB): rebuild it with
#              `cat OUT/checkpoint.tar.* | tar -x` (a folder `checkpoint/`)
# Progress lines go to stdout and OUT/progress.log.
#
# Knobs (environment): WORK, SYNTH_S (190), TRAIN_S (180), EVAL_S (120), WORKERS (cores - 1),
# N_TEST (32), N_TRAIN_MAX (3000), BATCH (8), LR (3e-4), CAL_STEPS (40), N_EVAL (16), MAX_STEPS,
# PRESET (tiny). `base` does not fit: its 45 M parameters are 172 MiB in fp32, over the 64 MiB
# the run tool returns, and `humansplat data synth` assembles inputs for tiny's 128 px views.
set -euo pipefail

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--smoke] OUT" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
cd "$root"
t_start=$(date +%s)

if [ $smoke = 1 ]; then
  WORK="${WORK:-/tmp/humansplat-device-train-smoke}"
  SYNTH_S="${SYNTH_S:-120}"; TRAIN_S="${TRAIN_S:-90}"; EVAL_S="${EVAL_S:-120}"
  WORKERS="${WORKERS:-2}"; N_TEST="${N_TEST:-1}"; N_TRAIN_MAX="${N_TRAIN_MAX:-2}"
  BATCH="${BATCH:-1}"; CAL_STEPS="${CAL_STEPS:-2}"; N_EVAL="${N_EVAL:-1}"; MAX_STEPS="${MAX_STEPS:-4}"
  synth_args=(--resolution 64 --input-size 64)
  train_extra=(--set loss.lambda_p=0 --set run.threads=1)
  eval_extra=(--no-baselines --perceptual none)
  shipped=()
else
  WORK="${WORK:-/tmp/humansplat-device-train}"
  SYNTH_S="${SYNTH_S:-190}"; TRAIN_S="${TRAIN_S:-180}"; EVAL_S="${EVAL_S:-120}"
  WORKERS="${WORKERS:-$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))}"; N_TEST="${N_TEST:-32}"
  N_TRAIN_MAX="${N_TRAIN_MAX:-3000}"; BATCH="${BATCH:-8}"; CAL_STEPS="${CAL_STEPS:-40}"
  N_EVAL="${N_EVAL:-16}"
  synth_args=()
  train_extra=()
  eval_extra=()
  shipped=(--checkpoint "shipped=$root/humansplat/checkpoints/humansplat-tiny")
fi
LR="${LR:-0.0003}"
PRESET="${PRESET:-tiny}"
MAX_STEPS="${MAX_STEPS:-}"  # set: train to this step count instead of the calibrated one
export SYNTH_S TRAIN_S EVAL_S WORKERS BATCH LR PRESET
data="$WORK/data"; run="$WORK/run"; done_dir="$WORK/done"
mkdir -p "$WORK" "$done_dir"

log() { echo "[$(date -u +%H:%M:%S) +$(( $(date +%s) - t_start ))s] $*" | tee -a "$out/progress.log"; }
done_step() { touch "$done_dir/$1"; }
is_done() { [ -f "$done_dir/$1" ]; }
left() { echo $(( $1 - ($(date +%s) - t_step) )); }

# shellcheck source=scripts/device_env.sh
source "$root/scripts/device_env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PY="${PYTHON:-python3}"
hs() { "$PY" -m humansplat.cli "$@"; }
device=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
log "start: smoke=$smoke device=$device workers=$WORKERS work=$WORK out=$out"
if [ "$device" != cuda ] && [ $smoke = 0 ]; then
  echo "device_train: no CUDA device here; use --smoke for the CPU run" >&2
  exit 2
fi

# -- synth --------------------------------------------------------------------------------------
t_step=$(date +%s)
if ! is_done synth; then
  log "synth: $N_TEST test subjects"
  hs data synth --out "$data" --train 0 --test "$N_TEST" --hard 0 --workers "$WORKERS" \
    --shard-size 2 --no-progress "${synth_args[@]}" 2>&1 | tee -a "$out/progress.log" | tail -n 1
  budget=$(left "$SYNTH_S")
  log "synth: training subjects for ${budget}s (at most $N_TRAIN_MAX)"
  set +e  # the time limit ends generation; complete shards stay, the rest is dropped
  timeout --signal=TERM --kill-after=10 "$budget" "$PY" -m humansplat.cli data synth \
    --out "$data" --train "$N_TRAIN_MAX" --test 0 --hard 0 --workers "$WORKERS" \
    --shard-size 2 --no-progress "${synth_args[@]}" >> "$out/progress.log" 2>&1
  rc=$?
  set -e
  if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then log "synth failed (exit $rc)"; exit $rc; fi
  done_step synth
fi
read -r n_train n_test < <("$PY" -c "from humansplat.train.dataset import SyntheticHumans as S
print(len(S('$data', 'train')), len(S('$data', 'test')))")
log "synth: $n_train training and $n_test test subjects"
if [ "$n_train" -lt 1 ]; then log "no training subjects were generated"; exit 1; fi

# -- calibrate + train ----------------------------------------------------------------------------
train_args=(--config configs/tiny.yaml -o "$run" --quiet --set "model.preset=$PRESET"
            --set "data.root=$data" --set "optim.batch_size=$BATCH"
            --set "optim.lr=$("$PY" -c "print(float('$LR'))")"  # YAML reads 3e-4 as a string
            --set run.log_every=10 --set run.save_every=100 --set run.sample_every=100000
            "${train_extra[@]}")
t_step=$(date +%s)
if ! is_done calibrate; then
  log "calibrate: $CAL_STEPS steps"
  hs train "${train_args[@]}" --max-steps "$CAL_STEPS" | tail -n 1 | tee -a "$out/progress.log"
  done_step calibrate
fi
if [ ! -f "$WORK/plan.json" ]; then
  "$PY" - "$run/log.jsonl" "$CAL_STEPS" "$(left "$TRAIN_S")" "$WORK/plan.json" "$MAX_STEPS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sps = max((r.get("sec_per_step", 0.0) for r in rows[-2:]), default=0.0) or 1.0  # the slower
cal, left = int(sys.argv[2]), float(sys.argv[3])
steps = cal + max(0, int(0.85 * (left - 30) / sps))  # 30 s: start-up, checkpoint, EMA save
if sys.argv[5]:
    steps = int(sys.argv[5])
json.dump({"sec_per_step": sps, "max_steps": steps, "train_budget_s": left}, open(sys.argv[4], "w"))
EOF
fi
max_steps=$("$PY" -c "import json; print(json.load(open('$WORK/plan.json'))['max_steps'])")
if ! is_done train; then
  budget=$(left "$TRAIN_S")
  [ "$budget" -lt 20 ] && budget=20
  log "train: to step $max_steps (at most ${budget}s)"
  minutes=$("$PY" -c "print(max(0.2, ($budget - 15) / 60))")
  hs train "${train_args[@]}" --max-steps "$max_steps" --max-minutes "$minutes" \
    | tail -n 1 | tee "$WORK/train_result.json" | tee -a "$out/progress.log"
  done_step train
fi

# -- eval -------------------------------------------------------------------------------------------
t_step=$(date +%s)
if ! is_done eval; then
  log "eval: $N_EVAL test subjects (budget ${EVAL_S}s)"
  timeout --kill-after=10 "$EVAL_S" "$PY" -m humansplat.cli eval --data "$data" --split test \
    --checkpoint "device=$run/model" "${shipped[@]}" --max-subjects "$N_EVAL" -o "$WORK/eval" \
    --quiet "${eval_extra[@]}" 2>&1 | tail -n 12 | tee -a "$out/progress.log"
  [ -f "$WORK/eval/results.json" ] && done_step eval || log "eval did not finish"
fi

# -- pack -------------------------------------------------------------------------------------------
log "pack"
ck="$WORK/checkpoint"
rm -rf "$ck" && mkdir -p "$ck"
cp "$run/model/"* "$ck/"
cp "$root/humansplat/checkpoints/humansplat-tiny/pipeline.json" "$ck/"
cp "$run/config.json" "$ck/train_config.json"
cp "$run/log.jsonl" "$ck/train_log.jsonl"
rm -f "$out"/checkpoint.tar.*
tar -C "$WORK" -cf - checkpoint | split -b 15M -d - "$out/checkpoint.tar."
[ -f "$WORK/eval/results.json" ] && cp "$WORK/eval/results.json" "$out/eval.json"
[ -f "$WORK/eval/results.md" ] && cp "$WORK/eval/results.md" "$out/eval.md"
"$PY" - "$WORK" "$out" "$smoke" "$device" "$n_train" "$n_test" "$t_start" <<'EOF'
import hashlib, json, os, sys, time
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
res = json.loads((work / "train_result.json").read_text()) if (work / "train_result.json").is_file() else None
sha = hashlib.sha256((work / "checkpoint" / "model.safetensors").read_bytes()).hexdigest()
summary = {"smoke": sys.argv[3] == "1", "device": sys.argv[4],
           "n_train_subjects": int(sys.argv[5]), "n_test_subjects": int(sys.argv[6]),
           "plan": json.loads((work / "plan.json").read_text()), "train": res,
           "model_sha256": sha, "eval": (out / "eval.json").is_file(),
           "total_s": int(time.time()) - int(sys.argv[7]),
           "env": {k: os.environ.get(k) for k in ("SYNTH_S", "TRAIN_S", "EVAL_S", "WORKERS",
                                                   "BATCH", "LR", "PRESET")},
           "rebuild": "cat checkpoint.tar.* | tar -x  (a folder checkpoint/)"}
try:
    import torch
    if torch.cuda.is_available():
        summary["gpu"] = torch.cuda.get_device_name(0)
except Exception:
    pass
(out / "train.json").write_text(json.dumps(summary, indent=1))
EOF
log "done: $(du -sh "$out" | cut -f1) in $out ($(ls "$out" | tr '\n' ' '))"
