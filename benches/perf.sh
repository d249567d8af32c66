#!/usr/bin/env bash
# Where a fetch's CPU time goes, by `perf record -e cpu-clock -g`: time, not instructions (unlike
# callgrind.sh), kernel and glibc included. See benches/README.md.
#
# usage: benches/perf.sh [BINARY] [VIDEOS]   (defaults: target/release/douyin-watch, 5000)
# Call stacks need frame pointers (SQLite's C code has none, so stacks through it are partial):
#   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only RUSTFLAGS="-C force-frame-pointers=yes" \
#     cargo build --release --locked --target-dir target/frame-pointers
#   benches/perf.sh target/frame-pointers/release/douyin-watch
# Prints, for pass 1 (content new) and pass 2 (unchanged), the shares of the kernel, glibc and the
# program, and the inclusive shares of the parts of a fetch; the profiles stay in the printed
# folder for `perf report -i FOLDER/pass-2.data`.
set -euo pipefail

bin=$(realpath "${1:-target/release/douyin-watch}")
videos=${2:-5000}
command -v perf >/dev/null || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 1; }
[ -x "$bin" ] || { echo "no binary at $bin: run cargo build --release first" >&2; exit 1; }

dir=$(mktemp -d -t douyin-watch-perf.XXXXXX)
# shellcheck source=benches/watched-simulator.sh
source "$(dirname "$0")/watched-simulator.sh"

# The frames whose inclusive share says how much a part of a fetch takes.
parts='douyin_watch::store::write_rows|__libc_pwrite|__GI___writev|hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_catch|hyper_util::client::legacy::client::Client<C,B>::send_request::\{\{closure\}\}|tokio::runtime::io::driver::Driver::turn|douyin_watch::attempt::judge|douyin_watch::content::Content::from_item|douyin_watch::content::Content::hash|douyin_watch::store::Store::record_attempt::\{\{closure\}\}'

echo "perf: $videos videos, profiles in $dir"
for pass in 1 2; do
    perf record -q -e cpu-clock -F 4999 -g -o "$dir/pass-$pass.data" \
        "$bin" --database "$database" fetch >"$dir/fetch-$pass.log" 2>&1
    echo "pass $pass:"
    perf report -i "$dir/pass-$pass.data" --no-children --sort dso -q -g none 2>/dev/null |
        awk 'NF >= 2 { printf "  %-8s %s\n", $1, $2 }' | head -4
    perf report -i "$dir/pass-$pass.data" --children --sort sym -q -g none 2>/dev/null |
        grep -E "\] ($parts)\s*$" | awk '{ $2 = ""; $3 = ""; printf "  %s\n", $0 }'
done
