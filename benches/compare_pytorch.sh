#!/bin/bash
# diffclip (examples/bench.rs) and PyTorch (benches/pytorch/diffclip_reference.py) side by side:
# interleaved rounds, each diffclip configuration (kernels on/off x allocator tuned/default) and
# PyTorch with and without the same allocator setting. One JSON line per run on stdout.
#
#   PYTHON=/path/to/python-with-torch ROUNDS=2 bash benches/compare_pytorch.sh > cmp.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-2}
TUNE=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647
cargo build --release --example bench >&2
for round in $(seq "$ROUNDS"); do
  for preset in diffclip_vit_b16 clip_vit_b16; do
    for flags in "" "--default-malloc" "--generic-ops --default-malloc" "--generic-ops"; do
      # shellcheck disable=SC2086
      ./target/release/examples/bench --preset "$preset" --batch 8 --text-batch 32 --iters 3 $flags |
        sed "s/^{/{\"round\":$round,/"
    done
  done
  "$PYTHON" benches/pytorch/diffclip_reference.py --batch 8 --text-batch 32 --iters 3 |
    sed "s/^{/{\"round\":$round,\"malloc_tuned\":false,/"
  GLIBC_TUNABLES=$TUNE "$PYTHON" benches/pytorch/diffclip_reference.py --batch 8 --text-batch 32 --iters 3 |
    sed "s/^{/{\"round\":$round,\"malloc_tuned\":true,/"
done
