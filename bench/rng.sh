#!/usr/bin/env bash
# rng throughput through viod as the viornd reference driver sees it, at
# 4 KiB and 64 KiB requests, beside getrandom() measured in the same run.
# Usage: bench/rng.sh [BUILD_DIR] [viobench options...]
# Target: viod/getrandom >= 0.9 at 4 KiB.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
shift || true
[ -x "$build/viod" ] && [ -x "$build/tools/viobench" ] || {
	echo "bench: build first (meson setup build && ninja -C build)" >&2
	exit 2
}
tmp=$(mktemp -d)
"$build/viod" --control "$tmp/control" --device "rng,id=rng0,socket=$tmp/rng0.sock" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -S "$tmp/rng0.sock" ] && break; sleep 0.05; done
"$build/tools/viobench" --socket "$tmp/rng0.sock" "$@" rng
