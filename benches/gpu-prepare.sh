#!/bin/bash
# Builds, here, what benches/gpu.sh runs on a lent GPU machine, and packs it into .gpu/ (ignored)
# small enough to travel: a device call carries at most 64 MiB of working tree, and the release
# `bench` and `attention_ratio` are ~100 MB each (73 MB stripped, 11 MB with xz). Two builds:
# `wgpu,vulkan` (kernels compiled to SPIR-V, cooperative-matrix matmuls where the driver has
# them; never run before a GPU run, since lavapipe crashes on its matmuls) and plain `wgpu`
# (WGSL, the path of the one earlier H200 run), suffixed `-wgsl`, which gpu.sh falls back on.
#
#   bash benches/gpu-prepare.sh
#   # then, on the device (carry .gpu and .gl; see benches/gpu.sh):
#   bash benches/gpu.sh > "$OUT/gpu.jsonl"
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu
rm -f .gpu/*
pack() { # FEATURES SUFFIX EXAMPLE...
  local features=$1 suffix=$2; shift 2
  cargo build --release --features "$features" "${@/#/--example=}"
  for name in "$@"; do
    strip -o ".gpu/$name$suffix" "target/release/examples/$name"
    xz -T0 -6 ".gpu/$name$suffix"
  done
}
pack wgpu,vulkan "" bench attention_ratio
# WGSL: `bench` alone (the 64 MiB limit); the ratio runs need the SPIR-V build.
pack wgpu -wgsl bench
# The kernels against plain Rust (diffclip-attention's host_check test) in the SPIR-V build, run
# on the GPU before any timing.
check=$(cargo test --release -p diffclip -p diffclip-attention --features wgpu,vulkan --lib --no-run --message-format=json |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "diffclip_attention" and m["profile"]["test"] and m.get("executable"):
        print(m["executable"])')
strip -o .gpu/kernel_check "$check"
xz -T0 -6 .gpu/kernel_check
# The Vulkan loader for the device, as .debs (the device README's recipe), once.
if ! ls .gl/*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  { apt-get $o update -qq && (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2); } ||
    echo "warning: could not download the Vulkan loader into .gl/ (no apt?); the device may lack libvulkan" >&2
fi
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+changes')" > .gpu/built-from
ls -l .gpu .gl
du -sh --exclude=target --exclude=.git . | sed 's/\t.*/ would travel (limit 64 MiB)/'
