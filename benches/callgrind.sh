#!/usr/bin/env bash
# Instructions per fetch of `douyin-watch fetch`, counted by valgrind's callgrind: unlike CPU time
# on a shared VM (±15 % between runs), the counts agree within about 1 % between runs, so they
# show the direction of a change in one run each. See benches/README.md.
#
# usage: benches/callgrind.sh [BINARY] [VIDEOS]   (defaults: target/release/douyin-watch, 1000)
# Prints pass 1 (content new) and pass 2 (unchanged); the profiles stay in the printed folder
# for `callgrind_annotate --inclusive=yes FOLDER/pass-2.out`.
set -euo pipefail

bin=$(realpath "${1:-target/release/douyin-watch}")
videos=${2:-1000}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
[ -x "$bin" ] || { echo "no binary at $bin: run cargo build --release first" >&2; exit 1; }

dir=$(mktemp -d -t douyin-watch-callgrind.XXXXXX)
# shellcheck source=benches/watched-simulator.sh
source "$(dirname "$0")/watched-simulator.sh"

echo "callgrind: $videos videos, profiles in $dir"
for pass in 1 2; do
    valgrind --tool=callgrind --callgrind-out-file="$dir/pass-$pass.out" \
        "$bin" --database "$database" fetch >"$dir/fetch-$pass.log" 2>"$dir/valgrind-$pass.log"
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/pass-$pass.out")
    echo "pass $pass: $((total / videos)) instructions per fetch ($total in all, startup included)"
done
