#!/usr/bin/env bash
# Throughput of HTTP serving (`search --listen`) with and without batching of concurrent
# requests: DiffCLIP ViT-B/16 (random weights) on flex, 8 clients posting text queries, then
# image queries, against servers started with --max-batch 1 and --max-batch 8, alternated for
# ROUNDS rounds. One JSON line per run (benches/serve_load.py). Needs the release examples:
#   cargo build --release --examples && bash benches/serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-2}" SECONDS_PER_RUN="${SECONDS_PER_RUN:-20}" CONCURRENCY="${CONCURRENCY:-8}"
ex=target/release/examples
work=$(mktemp -d); trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT
"$ex/load_memory" --preset diffclip_vit_b16 --write "$work/model.safetensors" >/dev/null
model=(--preset diffclip_vit_b16 --checkpoint "$work/model.safetensors")
"$ex/embed" "${model[@]}" --images ../shared/fixtures/preprocess/images --output "$work/index" 2>/dev/null
printf 'a photo of a dog playing on the beach' > "$work/query.txt"
cp ../shared/fixtures/preprocess/images/coco_sample.jpg "$work/query.jpg"
for round in $(seq "$ROUNDS"); do
    for batch in 1 8; do
        "$ex/search" "${model[@]}" --index "$work/index" --listen 127.0.0.1:0 --max-batch "$batch" 2>"$work/log" &
        server=$!
        until grep -q "listening on" "$work/log"; do sleep 0.2; done
        addr=$(grep -o 'http://[0-9.:]*' "$work/log" | head -1)
        for kind in text image; do
            body="$work/query.txt"; [ "$kind" = image ] && body="$work/query.jpg"
            python3 benches/serve_load.py --url "$addr/search/$kind?top_k=10" --body "$body" --concurrency "$CONCURRENCY" \
                --seconds "$SECONDS_PER_RUN" --label "round $round, $kind, --max-batch $batch"
        done
        kill "$server"; wait "$server" 2>/dev/null || true
    done
done
