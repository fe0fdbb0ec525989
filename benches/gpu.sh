#!/bin/bash
# diffclip (wgpu, f32) and PyTorch CUDA (f32, bf16 autocast, AMP training) on the same NVIDIA GPU
# in one call: the script to hand to a lent GPU machine (issue 11). One JSON line per run on
# stdout; the first names the GPU, its driver and the CPU. Build here, carry the binary:
#
#   cargo test --release --workspace --features diffclip/wgpu,diffclip/vulkan --no-run
#   mkdir -p .gpu && cp target/release/examples/{bench,attention_ratio} .gpu/   # .gpu ignored via .git/info/exclude
#   # on the GPU machine (carry .gpu, and .gl for the Vulkan loader, see the device README):
#   BENCH=.gpu/bench RATIO=.gpu/attention_ratio bash benches/gpu.sh > gpu.jsonl
#
# diffclip's inference runs twice for DiffCLIP: Burn's flash attention (two calls per
# differential layer) and diffclip's own kernel (`--gpu-kernel`, one product with V per head
# pair); the faster becomes the default. attention_ratio gives differential / standard time
# for one layer (width 768, 12 heads, N = 197, batch 64) both ways, and with the backward.
#
# PYTHON: a Python with torch (CUDA build); ITERS, WARMUP: timed and untimed calls per run;
# SKIP_TORCH=1 or SKIP_DIFFCLIP=1 leave a side out. Each run has a time limit (LIMIT seconds),
# so one hung backend cannot eat the machine's minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BENCH=${BENCH:-target/release/examples/bench}
RATIO=${RATIO:-target/release/examples/attention_ratio}
ITERS=${ITERS:-10}
WARMUP=${WARMUP:-3}
LIMIT=${LIMIT:-240}
# The Vulkan loader, when carried as .debs (the device README's recipe).
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
torch=$("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)
echo "{\"gpu\":\"$gpu\",\"cpu\":\"$cpu\",\"cores\":$(nproc),\"torch\":\"$torch\",\"date\":\"$(date -u +%FT%TZ)\"}"

run() { # a labelled command; its JSON lines pass through, a failure becomes a JSON line
  local label=$1; shift
  local out
  if out=$(timeout "$LIMIT" "$@" 2>/tmp/gpu-bench.err); then
    printf '%s\n' "$out" | grep '^{' | sed "s/^{/{\"run\":\"$label\",/"
  else
    echo "{\"run\":\"$label\",\"failed\":$?,\"error\":$(tail -c 400 /tmp/gpu-bench.err | "$PYTHON" -c 'import json,sys; print(json.dumps(sys.stdin.read()))' 2>/dev/null || echo '""')}"
  fi
}

for batch in 8 64; do
  texts=$((batch * 4))
  if [ "${SKIP_DIFFCLIP:-0}" != 1 ]; then
    # wgpu has f16 (where the driver does) but no bf16: f16 stands in for PyTorch's bf16 autocast.
    for dtype in f32 f16; do
      for preset in diffclip_vit_b16 clip_vit_b16; do
        run "diffclip-wgpu-$preset-$dtype-b$batch" "$BENCH" --backend wgpu --preset "$preset" --dtype "$dtype" --batch "$batch" --text-batch "$texts" --iters "$ITERS" --warmup "$WARMUP"
      done
      run "diffclip-wgpu-diffclip_vit_b16-$dtype-b$batch-kernel" "$BENCH" --backend wgpu --preset diffclip_vit_b16 --gpu-kernel --dtype "$dtype" --batch "$batch" --text-batch "$texts" --iters "$ITERS" --warmup "$WARMUP"
    done
  fi
  if [ "${SKIP_TORCH:-0}" != 1 ]; then
    for dtype in f32 bf16; do
      run "torch-cuda-$dtype-b$batch" "$PYTHON" benches/pytorch/diffclip_reference.py --device cuda --dtype "$dtype" --batch "$batch" --text-batch "$texts" --iters "$ITERS" --warmup "$WARMUP"
    done
  fi
done
if [ "${SKIP_DIFFCLIP:-0}" != 1 ]; then
  for flags in "" "--gpu-kernel" "--backward"; do
    run "diffclip-wgpu-attention-ratio${flags:+-}${flags#--}" "$RATIO" --backend wgpu --n 197 --batch 64 --iters "$ITERS" --warmup "$WARMUP" $flags
  done
fi
# Training: the small model of benches/train_step.rs on both sides; ViT-B/16 at batch 64 in
# f32 and mixed precision (diffclip: f16 compute from f32 weights; PyTorch: AMP bf16).
if [ "${SKIP_DIFFCLIP:-0}" != 1 ]; then
  run "diffclip-wgpu-train-small" "$BENCH" --backend wgpu --train --iters "$ITERS" --warmup "$WARMUP"
  for dtype in f32 f16; do
    run "diffclip-wgpu-train-vit_b16-$dtype" "$BENCH" --backend wgpu --train --train-model vit_b16 --dtype "$dtype" --batch 64 --iters "$ITERS" --warmup "$WARMUP"
  done
fi
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  run "torch-cuda-train-small" "$PYTHON" benches/pytorch/diffclip_reference.py --device cuda --train --batch 32 --iters "$ITERS" --warmup "$WARMUP"
  for dtype in f32 bf16; do
    run "torch-cuda-train-vit_b16-$dtype" "$PYTHON" benches/pytorch/diffclip_reference.py --device cuda --train --train-model vit_b16 --dtype "$dtype" --batch 64 --iters "$ITERS" --warmup "$WARMUP"
  done
fi
