# Sourced by callgrind.sh and syscalls.sh (not run on its own): starts `douyin-watch simulate` on
# a free loopback port (latency 50 ms, 32 calls in flight, no daily cap), points the collector at
# it through the environment and watches $videos ids in a fresh database.
#
# Expects: $bin (the binary), $videos, $dir (an empty folder). Sets: $database, $simulator.

port=$((20000 + RANDOM % 20000))
DOUYIN_WATCH__LOG__LEVEL=warn "$bin" simulate --listen "127.0.0.1:$port" \
    --daily-max 1000000000 --latency 50ms --max-concurrent 32 >"$dir/simulator.log" 2>&1 &
simulator=$!
trap 'kill $simulator 2>/dev/null || true' EXIT
sleep 1

for i in $(seq 1 "$videos"); do printf '72%017d\n' "$i"; done >"$dir/ids.txt"
export DOUYIN_WATCH__API__BASE_URL="http://127.0.0.1:$port" \
    DOUYIN_WATCH__API__KEY=bench-key \
    DOUYIN_WATCH__API__SECRET=bench-secret-not-real \
    DOUYIN_WATCH__API__CONCURRENCY=32 \
    DOUYIN_WATCH__API__RATE_PER_SEC=1000000
database="sqlite://$dir/db.sqlite"
"$bin" --database "$database" watch add --file "$dir/ids.txt" >/dev/null
