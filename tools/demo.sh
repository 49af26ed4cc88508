#!/usr/bin/env bash
# The main job, on embedded defaults, from a fresh Debian 12 machine:
# installs dependencies, builds viod, starts it with an rng device, boots a
# Debian guest in QEMU (TCG) on vhost-user-rng-pci that reads /dev/hwrng,
# then runs the reference viornd driver against the same socket without
# restarting viod.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build -Dbuildtype=debugoptimized >/dev/null
ninja -C build >/dev/null
guest=$(tools/guest/build-guest.sh)

tmp=$(mktemp -d)
viod_pid=""
cleanup() {
	[ -n "$viod_pid" ] && kill "$viod_pid" 2>/dev/null && wait "$viod_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

sock=$tmp/rng0.sock
build/viod --verbose --device "rng,id=rng0,socket=$sock" 2>"$tmp/viod.log" &
viod_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

cat >"$tmp/guest.sh" <<'GUEST'
#!/bin/sh
echo "guest: rng_current = $(cat /sys/class/misc/hw_random/rng_current)"
echo "guest: 32 bytes from /dev/hwrng:"
head -c 32 /dev/hwrng | od -An -tx1
GUEST

echo "== booting a Linux guest on viod's rng device ($sock)"
tools/guest/run-guest.sh --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" \
	--script "$tmp/guest.sh" -- \
	-chardev "socket,id=c0,path=$sock" -device vhost-user-rng-pci,chardev=c0 |
	grep -E '^guest:|^ [0-9a-f]{2} |VIOD-GUEST-EXIT'

echo "== the viornd reference driver on the same socket"
build/tools/vioguest --socket "$sock" rng --bytes 32 --hex

echo "== viod's log"
kill "$viod_pid"
wait "$viod_pid" || true
viod_pid=""
grep -v ': [A-Z_]*$' "$tmp/viod.log" || true
