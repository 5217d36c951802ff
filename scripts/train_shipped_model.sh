#!/usr/bin/env bash
# How models/recore_pointnav was trained: three stages of one run, each a resume of the last.
#   bash scripts/train_shipped_model.sh [RUN_DIR]      # default runs/recore_pointnav
# On the project's 2-core CPU (one torch thread, the environment processes and other jobs on the
# other core) the stages took about 85, 30 + 15 and 50 minutes. The stage ends are the
# step counts at which the shipped run was stopped; a run interrupted and resumed elsewhere
# follows the same recipe but is not bit-identical (its evaluation episodes fall at other steps).
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/recore_pointnav}"
train=(python training/train_igibson.py --run-dir "$run" --threads 1)

# 1. ReCoRe (contrastive + depth), expert-seeded replay, one-mode actor imitating at bc_scale 10.
if [ -f "$run/checkpoint.pt" ]; then stage1=(--resume); else stage1=(--config config/train/recore_pointnav.yaml); fi
"${train[@]}" "${stage1[@]}" --set run.total_steps=29112
# 2. The same, imitation weighted 50; from step 35,016 in bf16 mixed precision (about twice the
#    updates a second) with evaluations every 3,000 steps.
"${train[@]}" --resume --set run.total_steps=35016 --set agent.behavior.bc_scale=50
"${train[@]}" --resume --set run.total_steps=45232 --set agent.precision=bf16 --set run.eval_every=3000
# 3. A new two-mode actor (multiple-choice imitation) on stage 2's world model, critic and replay.
#    A stage that has already run returns at once, so rerunning the script continues it.
if ! grep -q "actor_modes: 2" "$run/config.yaml"; then reset=(--reset-actor); else reset=(); fi
"${train[@]}" --resume "${reset[@]}" --set agent.behavior.actor_modes=2 --set run.total_steps=70000

python training/export_onnx.py "$run" --out models/recore_pointnav --name recore_pointnav
for split in train ood sim2real; do
  python training/evaluate.py models/recore_pointnav --split "$split" --episodes 200 --baseline --record \
      --run-dir "$run" --videos 2 --out "$run/eval_$split"
done
