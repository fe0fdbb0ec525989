#!/usr/bin/env bash
# Throughput of HTTP serving (`search --listen`) with and without batching of concurrent
# requests: DiffCLIP ViT-B/16 (random weights) on flex, 8 clients posting text queries, then
# image queries, against servers started with --max-batch 1 and --max-batch 8, alternated for
# ROUNDS rounds. With MODE=keep-alive, one server (--max-batch 8) instead, and clients that open
# a connection per request against clients that keep one (GET /health, then text queries),
# alternated. One JSON line per run (benches/serve_load.py). Needs the release examples:
#   cargo build --release --examples && bash benches/serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${MODE:-batching}" ROUNDS="${ROUNDS:-2}" SECONDS_PER_RUN="${SECONDS_PER_RUN:-20}" CONCURRENCY="${CONCURRENCY:-8}"
ex=target/release/examples
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
"$ex/load_memory" --preset diffclip_vit_b16 --write "$work/model.safetensors" >/dev/null
model=(--preset diffclip_vit_b16 --checkpoint "$work/model.safetensors")
"$ex/embed" "${model[@]}" --images ../shared/fixtures/preprocess/images --output "$work/index" 2>"$work/embed.log" || { cat "$work/embed.log" >&2; exit 1; }
printf 'a photo of a dog playing on the beach' > "$work/query.txt"
cp ../shared/fixtures/preprocess/images/coco_sample.jpg "$work/query.jpg"  # 224 x 224
start_server() { # --max-batch $1; sets $server and $addr
    "$ex/search" "${model[@]}" --index "$work/index" --listen 127.0.0.1:0 --max-batch "$1" 2>"$work/log" &
    server=$!
    for _ in $(seq 600); do
        grep -q "listening on" "$work/log" && break
        kill -0 "$server" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
        sleep 0.2
    done
    grep -q "listening on" "$work/log" || { echo "the server did not listen within 120 s" >&2; cat "$work/log" >&2; exit 1; }
    addr=$(grep -o 'http://[0-9.:]*' "$work/log" | head -1)
}
load() { python3 benches/serve_load.py --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_RUN" "$@"; }
if [ "$MODE" = keep-alive ]; then
    start_server 8
    for round in $(seq "$ROUNDS"); do
        for ka in "" --keep-alive; do
            load --url "$addr/health" $ka --label "round $round, health, ${ka:-a connection per request}"
        done
        for ka in "" --keep-alive; do
            load --url "$addr/search/text?top_k=10" --body "$work/query.txt" $ka --label "round $round, text, ${ka:-a connection per request}"
        done
    done
    exit 0
fi
for round in $(seq "$ROUNDS"); do
    for batch in 1 8; do
        start_server "$batch"
        for kind in text image; do
            body="$work/query.txt"; [ "$kind" = image ] && body="$work/query.jpg"
            load --url "$addr/search/$kind?top_k=10" --body "$body" --label "round $round, $kind, --max-batch $batch"
        done
        kill "$server"; wait "$server" 2>/dev/null || true
    done
done
