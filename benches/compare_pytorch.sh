#!/bin/bash
# diffclip (examples/bench.rs) and PyTorch (benches/pytorch/diffclip_reference.py) side by side,
# alternated in rounds on one machine: the ViT-B/16 encoders (8 images, 32 texts) and the
# training step of benches/train_step.rs's small models (batch 32, AdamW, open_clip's ClipLoss);
# with OPEN_CLIP=1 also open_clip's own ViT-B-16 against diffclip's openclip_vit_b16 preset.
# One JSON line per measurement on stdout, the first one naming the machine (lscpu).
#
#   PYTHON=/path/to/python-with-torch ROUNDS=3 bash benches/compare_pytorch.sh > cmp.jsonl
#   FLAGS="--generic-ops|--default-malloc" ...    # more diffclip variants per round ('|'-separated)
#   BENCH=target/release/examples/bench ...       # an already built bench binary
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-3}
FLAGS=${FLAGS:-}
BENCH=${BENCH:-}
if [ -z "$BENCH" ]; then
  cargo build --release --example bench >&2
  BENCH=./target/release/examples/bench
fi
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "{\"machine\":\"$cpu\",\"cores\":$(nproc),\"torch\":\"$("$PYTHON" -c 'import torch; print(torch.__version__)')\"}"
variants=("")
if [ -n "$FLAGS" ]; then IFS='|' read -r -a extra <<< "$FLAGS"; variants+=("${extra[@]}"); fi
for round in $(seq "$ROUNDS"); do
  tag="s/^{/{\"round\":$round,/"
  for flags in "${variants[@]}"; do
    presets="diffclip_vit_b16 clip_vit_b16"
    if [ "${OPEN_CLIP:-0}" = 1 ]; then presets="$presets openclip_vit_b16"; fi
    for preset in $presets; do
      # shellcheck disable=SC2086
      "$BENCH" --preset "$preset" --batch 8 --text-batch 32 --iters 3 $flags | sed "$tag"
    done
    # shellcheck disable=SC2086
    "$BENCH" --train --iters 10 --warmup 2 $flags | sed "$tag"
  done
  "$PYTHON" benches/pytorch/diffclip_reference.py --batch 8 --text-batch 32 --iters 3 | sed "$tag"
  "$PYTHON" benches/pytorch/diffclip_reference.py --train --batch 32 --iters 10 --warmup 2 | sed "$tag"
  if [ "${OPEN_CLIP:-0}" = 1 ]; then
    "$PYTHON" benches/pytorch/diffclip_reference.py --open-clip --batch 8 --text-batch 32 --iters 3 | sed "$tag"
  fi
done
