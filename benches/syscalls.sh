#!/usr/bin/env bash
# System calls per fetch of `douyin-watch fetch`, counted by `strace -c -f`: the kernel's part of
# a fetch (WAL writes and page reads, loopback TCP, epoll), which callgrind.sh does not see. See
# benches/README.md.
#
# usage: benches/syscalls.sh [BINARY] [VIDEOS]   (defaults: target/release/douyin-watch, 3000)
# Prints the busiest calls of pass 1 (content new) and pass 2 (unchanged), with calls per fetch;
# the full tables stay in the printed folder.
set -euo pipefail

bin=$(realpath "${1:-target/release/douyin-watch}")
videos=${2:-3000}
command -v strace >/dev/null || { echo "strace is not installed" >&2; exit 1; }
[ -x "$bin" ] || { echo "no binary at $bin: run cargo build --release first" >&2; exit 1; }

dir=$(mktemp -d -t douyin-watch-syscalls.XXXXXX)
# shellcheck source=benches/watched-simulator.sh
source "$(dirname "$0")/watched-simulator.sh"

echo "syscalls: $videos videos, tables in $dir"
for pass in 1 2; do
    strace -c -f -o "$dir/pass-$pass.txt" \
        "$bin" --database "$database" fetch >"$dir/fetch-$pass.log" 2>&1
    echo "pass $pass (calls per fetch):"
    awk -v n="$videos" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
        printf "  %-14s %6.2f\n", $NF, $4 / n }' "$dir/pass-$pass.txt" | sort -k2 -rn | head -8
done
