#!/usr/bin/env bash
# The paper's ablations at our scale, all with the same budget (STEPS optimizer steps each,
# from scratch), for each training seed in SEEDS, then one `humansplat eval` per seed over
# the held-out split with every variant and the prior-only baselines, and a table of the
# mean and spread over seeds (scripts/ablation_table.py).
# Usage: STEPS=150 SEEDS="1 2" DATA=data/synth EVAL_DATA=data/synth scripts/ablations.sh [runs/ablations]
# DATA: the training set's root (default: the config's data.root); EVAL_DATA: the eval set's
# root (default: `humansplat eval`'s); MAX_SUBJECTS: evaluate the first N subjects only.
# Resumable: a finished variant is skipped, an interrupted one resumes from its checkpoint.
set -euo pipefail
root="${1:-runs/ablations}"
steps="${STEPS:-150}"
seeds="${SEEDS:-0}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OMP_WAIT_POLICY=PASSIVE
# mask weight 1, as the published ablation table (benchmarks/results/eval_ablations.md) ran
common=(--set "run.max_steps=$steps" --set "optim.warmup_steps=$((steps / 10))"
        --set "loss.lambda_m=${LAMBDA_M:-1}"
        --set run.save_every=25 --set "run.sample_every=$steps")
[ -n "${DATA:-}" ] && common+=(--set "data.root=$DATA")
declare -A variants=(
  [full]=""
  [no_human_prior]="--set model.overrides.use_human_prior=false --set model.overrides.body_anchor=false"
  [kwin1]="--set model.overrides.k_win=1"
  [kwin3]="--set model.overrides.k_win=3"
  [no_hier_loss]="--set loss.use_hierarchical=false"
)
names=(full no_human_prior kwin1 kwin3 no_hier_loss)
for seed in $seeds; do
  for name in "${names[@]}"; do
    out="$root/seed$seed/$name"
    [ -f "$out/model/model.safetensors" ] && continue
    # shellcheck disable=SC2086
    python -m humansplat.cli train --config configs/tiny.yaml -o "$out" --quiet \
      "${common[@]}" --set "run.seed=$seed" ${variants[$name]} | tail -n 1
  done
  args=()
  for name in "${names[@]}"; do
    args+=(--checkpoint "$name=$root/seed$seed/$name/model")
  done
  [ -n "${EVAL_DATA:-}" ] && args+=(--data "$EVAL_DATA")
  [ -n "${MAX_SUBJECTS:-}" ] && args+=(--max-subjects "$MAX_SUBJECTS")
  [ -f "$root/seed$seed/eval/results.json" ] || \
    python -m humansplat.cli eval --split test --no-faithful "${args[@]}" \
      -o "$root/seed$seed/eval" --quiet
done
python scripts/ablation_table.py "$root"
