#!/bin/bash
# diffclip (wgpu, f32) and PyTorch CUDA (f32, bf16 autocast, AMP training) on the same NVIDIA GPU
# in one call: the script to hand to a lent GPU machine (issue 11). One JSON line per run on
# stdout; the first names the GPU, its driver and the CPU. Build here, carry the binaries:
#
#   bash benches/gpu-prepare.sh    # wgpu + vulkan examples, stripped and xz-packed into .gpu/
#   # on the GPU machine (carry .gpu, and .gl for the Vulkan loader, see the device README):
#   bash benches/gpu.sh > "$OUT/gpu.jsonl"   # $OUT comes back
#   # back here: issue 11's table, each pair's ratio against its target
#   python3 benches/gpu_summary.py <fetched>/gpu.jsonl
#
# diffclip's inference runs twice for DiffCLIP: Burn's flash attention (two calls per
# differential layer) and diffclip's own kernel (`--gpu-kernel`, one product with V per head
# pair); the faster becomes the default. attention_ratio gives differential / standard time
# for one layer (width 768, 12 heads, N = 197, batch 64) both ways, and with the backward.
#
# PYTHON: a Python with torch (CUDA build); ITERS, WARMUP: timed and untimed calls per run;
# BATCHES ("8 64"), TRAIN_BATCH (64): sizes, smaller for a smoke run on a CPU (lavapipe);
# SKIP_TORCH=1 or SKIP_DIFFCLIP=1 leave a side out; TORCH_DEVICE=cpu runs PyTorch's side on the CPU
# (a smoke run of the whole script where there is no GPU). Each run has a time limit (LIMIT seconds),
# so one hung backend cannot eat the machine's minutes, and the script one (DEADLINE seconds):
# runs it cannot reach are listed as skipped, the most wanted having run first.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# gpu-prepare.sh's packed binaries, unpacked once (python's lzma where xz is missing).
for f in .gpu/*.xz; do
  [ -e "$f" ] && [ ! -x "${f%.xz}" ] || continue
  xz -dc "$f" > "${f%.xz}" 2>/dev/null || "$PYTHON" -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$f" "${f%.xz}"
  chmod +x "${f%.xz}"
done
packed() { if [ -x ".gpu/$1" ]; then echo ".gpu/$1"; else echo "target/release/examples/$1"; fi; }
BENCH=${BENCH:-$(packed bench)}
RATIO=${RATIO:-$(packed attention_ratio)}
# BUILD names diffclip's build in each run's label: `vulkan` (gpu-prepare.sh's SPIR-V build),
# `wgsl` (its plain-wgpu `bench`, run when the first falls over, and once for comparison; the
# ratio runs always take the SPIR-V build).
if [ -x .gpu/bench ]; then BUILD=${BUILD:-vulkan}; else BUILD=${BUILD:-wgpu}; fi
BENCH_WGSL=${BENCH_WGSL:-.gpu/bench-wgsl}
ITERS=${ITERS:-10}
WARMUP=${WARMUP:-3}
LIMIT=${LIMIT:-240}
DEADLINE=${DEADLINE:-540}  # seconds for the whole script: one device call may run 600
BATCHES=${BATCHES:-8 64}   # inference batch sizes; the last also sizes attention_ratio
TRAIN_BATCH=${TRAIN_BATCH:-64}
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
built=$(cat .gpu/built-from 2>/dev/null || echo "target/release (unpacked)")
echo "{\"gpu\":\"$gpu\",\"cpu\":\"$cpu\",\"cores\":$(nproc),\"torch\":\"$torch\",\"diffclip_build\":\"$built\",\"date\":\"$(date -u +%FT%TZ)\"}"

START=$SECONDS
run() { # a labelled command; its JSON lines pass through, a failure becomes a JSON line, and a
        # run with under 30 s of the DEADLINE left becomes a "skipped" line
  local label=$1; shift
  local left=$((DEADLINE - (SECONDS - START))) out status
  RUN_FAILED=0
  if [ "$left" -lt 30 ]; then
    echo "{\"run\":\"$label\",\"skipped\":\"deadline\"}"
    return
  fi
  if out=$(timeout "$((left < LIMIT ? left : LIMIT))" "$@" 2>/tmp/gpu-bench.err); then
    printf '%s\n' "$out" | grep '^{' | sed "s/^{/{\"run\":\"$label\",/"
  else
    status=$? RUN_FAILED=1
    echo "{\"run\":\"$label\",\"failed\":$status,\"error\":$(tail -c 400 /tmp/gpu-bench.err | "$PYTHON" -c 'import json,sys; print(json.dumps(sys.stdin.read()))' 2>/dev/null || echo '""')}"
  fi
}
OURS_RUN=0 OURS_FAILED=0
ours() { # LABEL-SUFFIX COMMAND...: diffclip's run, labelled with its build
  [ "${SKIP_DIFFCLIP:-0}" = 1 ] && return
  local label="diffclip-$BUILD-$1"; shift
  run "$label" "$@"
  OURS_RUN=$((OURS_RUN + 1)) OURS_FAILED=$((OURS_FAILED + RUN_FAILED))
}
theirs() { [ "${SKIP_TORCH:-0}" = 1 ] || run "$@"; }
# wgpu has f16 (where the driver does) but no bf16: diffclip's f16 faces PyTorch's bf16 autocast.
torch_dtype() { if [ "$1" = f16 ]; then echo bf16; else echo "$1"; fi; }
TORCH_DEVICE=${TORCH_DEVICE:-cuda}
TORCH=(benches/pytorch/diffclip_reference.py --device "$TORCH_DEVICE" --iters "$ITERS" --warmup "$WARMUP")

infer() { # BATCH DTYPE [ours]: DiffCLIP both ways, CLIP, then (without `ours`) PyTorch's two models
  local batch=$1 dtype=$2 texts=$(($1 * 4)) td
  td=$(torch_dtype "$2")
  local common=(--backend wgpu --dtype "$dtype" --batch "$batch" --text-batch "$texts" --iters "$ITERS" --warmup "$WARMUP")
  ours "diffclip_vit_b16-$dtype-b$batch" "$BENCH" --preset diffclip_vit_b16 "${common[@]}"
  ours "diffclip_vit_b16-$dtype-b$batch-kernel" "$BENCH" --preset diffclip_vit_b16 --gpu-kernel "${common[@]}"
  ours "clip_vit_b16-$dtype-b$batch" "$BENCH" --preset clip_vit_b16 "${common[@]}"
  [ "${3:-}" = ours ] && return
  theirs "torch-$TORCH_DEVICE-$td-b$batch" "$PYTHON" "${TORCH[@]}" --dtype "$td" --batch "$batch" --text-batch "$texts"
}
train_vit() { # DTYPE: ViT-B/16's training step (diffclip f16: mixed precision from f32 weights; PyTorch AMP)
  local td
  td=$(torch_dtype "$1")
  ours "train-vit_b16-$1" "$BENCH" --backend wgpu --train --train-model vit_b16 --dtype "$1" --batch "$TRAIN_BATCH" --iters "$ITERS" --warmup "$WARMUP"
  theirs "torch-$TORCH_DEVICE-train-vit_b16-$td" "$PYTHON" "${TORCH[@]}" --train --train-model vit_b16 --dtype "$td" --batch "$TRAIN_BATCH"
}

# Most wanted first, so that a run cut short by the DEADLINE still answers the issue's targets
# in order: f32 inference, the mixed-precision training step, reduced-precision inference,
# differential / standard attention, the larger batches, then f32 and small-model training.
first=${BATCHES%% *}
if [ -x .gpu/kernel_check ]; then
  # diffclip's attention kernels on this GPU against plain Rust (values and gradients), so that
  # the timings below are of kernels that compute the right thing.
  run "kernel-check-vulkan" bash -c '.gpu/kernel_check --exact gpu::host_check::kernels_match_attention_written_out_on_the_host >&2 && echo "{\"kernels_match_host\":true}"'
fi
infer "$first" f32
if [ "$OURS_RUN" -gt 0 ] && [ "$OURS_FAILED" = "$OURS_RUN" ] && [ "$BUILD" = vulkan ] && [ -x "$BENCH_WGSL" ]; then
  # The SPIR-V build never ran on a GPU before: if it cannot run at all, the rest uses WGSL.
  echo "{\"note\":\"every run of the vulkan (SPIR-V) build failed; the WGSL build takes over\"}"
  BENCH=$BENCH_WGSL BUILD=wgsl
  infer "$first" f32 ours
fi
train_vit f16
infer "$first" f16
if [ "$BUILD" = vulkan ] && [ -x "$BENCH_WGSL" ]; then
  # The same inference through WGSL: which compiler path a wgpu user on NVIDIA should build.
  (BENCH=$BENCH_WGSL BUILD=wgsl; infer "$first" f32 ours)
fi
for flags in "" "--gpu-kernel" "--backward"; do
  ours "attention-ratio${flags:+-}${flags#--}" "$RATIO" --backend wgpu --n 197 --batch "${BATCHES##* }" --iters "$ITERS" --warmup "$WARMUP" $flags
done
for batch in ${BATCHES#"$first"}; do
  infer "$batch" f32
  infer "$batch" f16
done
train_vit f32
ours "train-small" "$BENCH" --backend wgpu --train --iters "$ITERS" --warmup "$WARMUP"
theirs "torch-$TORCH_DEVICE-train-small" "$PYTHON" "${TORCH[@]}" --train --batch 32
