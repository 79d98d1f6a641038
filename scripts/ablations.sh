#!/usr/bin/env bash
# The paper's ablations at our scale, all with the same budget (STEPS optimizer steps each),
# then one `humansplat eval` over the held-out split with every variant and the prior-only
# baselines.  Usage: STEPS=150 scripts/ablations.sh [runs/ablations]
set -euo pipefail
root="${1:-runs/ablations}"
steps="${STEPS:-150}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OMP_WAIT_POLICY=PASSIVE
# mask weight 1, as the published ablation table (benchmarks/results/eval_ablations.md) ran
common=(--set "run.max_steps=$steps" --set "optim.warmup_steps=$((steps / 10))"
        --set "loss.lambda_m=${LAMBDA_M:-1}"
        --set run.save_every=25 --set "run.sample_every=$steps")
declare -A variants=(
  [full]=""
  [no_human_prior]="--set model.overrides.use_human_prior=false --set model.overrides.body_anchor=false"
  [kwin1]="--set model.overrides.k_win=1"
  [kwin3]="--set model.overrides.k_win=3"
  [no_hier_loss]="--set loss.use_hierarchical=false"
)
for name in full no_human_prior kwin1 kwin3 no_hier_loss; do
  # shellcheck disable=SC2086
  python -m humansplat.cli train --config configs/tiny.yaml -o "$root/$name" --quiet \
    "${common[@]}" ${variants[$name]} | tail -n 1
done
args=()
for name in full no_human_prior kwin1 kwin3 no_hier_loss; do
  args+=(--checkpoint "$name=$root/$name/model")
done
[ -n "${MAX_SUBJECTS:-}" ] && args+=(--max-subjects "$MAX_SUBJECTS")
python -m humansplat.cli eval --split test "${args[@]}" -o "$root/eval" --quiet
