#!/usr/bin/env bash
# Guest test: a Linux guest's virtio-rng driver on viod's vhost-user rng.
#
# Usage: rng.sh VIOD_BINARY [VIOGUEST_BINARY]
# With VIOGUEST_BINARY, the viornd reference driver then reads from the same
# socket, same viod process: a guest and the reference front-end in turn.
# Prints TAP on stdout (plan last); logs (build, console, viod) go to stderr.
# SKIPs only when QEMU is missing. Environment: VIOD_QEMU (QEMU binary,
# default qemu-system-x86_64), VIOD_GUEST_TIMEOUT (seconds, default 120),
# VIOD_CACHE (see tools/guest/build-guest.sh).
# Under meson, give it a timeout well above VIOD_GUEST_TIMEOUT: the first run
# also downloads and unpacks the kernel.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
qemu=${VIOD_QEMU:-qemu-system-x86_64}
# The guest-side device: QEMU's vhost-user-rng-pci, or (VIOD_RNG_GENERIC=1)
# the generic vhost-user-test-device-pci (vhost-user-device-pci before
# QEMU 10.2; tools/qemu-generic-device.sh picks) with virtio-id 4, which
# needs QEMU 10.2 or the patched QEMU (tools/build-qemu.sh, passed as
# VIOD_PATCHED_QEMU).
device=vhost-user-rng-pci,chardev=c0
generic=${VIOD_RNG_GENERIC:-0}
if [ "$generic" = 1 ]; then
	qemu=${VIOD_PATCHED_QEMU:-$qemu}
fi
guest_timeout=${VIOD_GUEST_TIMEOUT:-120}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 VIOD_BINARY [VIOGUEST_BINARY]" >&2
	exit 2
fi
viod=$1
vioguest=${2:-}

if ! command -v "$qemu" >/dev/null; then
	echo "1..0 # SKIP $qemu not found"
	exit 0
fi

n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
bail() { echo "Bail out! $*"; exit 1; }
# check DESC CMD...: one TAP line for CMD's success.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

if [ "$generic" = 1 ]; then
	name=$("$top/tools/qemu-generic-device.sh" "$qemu") ||
		bail "$qemu has no generic vhost-user device to create"
	device=$name,virtio-id=4,num_vqs=1,chardev=c0
	echo "# generic device: $name"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-rng.XXXXXX")
sock=$tmp/rng0.sock
viod_pid=""
cleanup() {
	if [ -n "$viod_pid" ] && kill -0 "$viod_pid" 2>/dev/null; then
		kill -KILL "$viod_pid" 2>/dev/null || true
		wait "$viod_pid" 2>/dev/null || true
	fi
	if [ -s "$tmp/viod.log" ]; then
		sed 's/^/viod: /' "$tmp/viod.log" >&2
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# 1. Guest image (cached after the first run).
if ! dir=$("$top/tools/guest/build-guest.sh" | tail -n 1) || [ ! -s "$dir/vmlinuz" ]; then
	not_ok "guest image built"
	bail "cannot build the guest image"
fi
ok "guest image built ($dir)"

# 2. viod serving one rng device.
[ -x "$viod" ] || bail "$viod is not executable"
"$viod" --control "$tmp/control" --device "rng,id=rng0,socket=$sock" >"$tmp/viod.log" 2>&1 &
viod_pid=$!
for _ in $(seq 100); do
	[ -S "$sock" ] && break
	kill -0 "$viod_pid" 2>/dev/null || break
	sleep 0.1
done
if [ ! -S "$sock" ]; then
	not_ok "viod created $sock"
	bail "viod did not start"
fi
ok "viod created its socket"

# 3. Boot the guest on it; its TAP lines become ours, renumbered.
grc=0
"$top/tools/guest/run-guest.sh" --kernel "$dir/vmlinuz" --initrd "$dir/initrd.img" \
	--script "$here/rng-guest.sh" --timeout "$guest_timeout" --qemu "$qemu" \
	--log "$tmp/console.log" -- \
	-chardev "socket,id=c0,path=$sock" -device "$device" \
	>&2 || grc=$?
seen=0
while IFS= read -r line; do
	seen=$((seen + 1))
	if [[ $line =~ ^ok\ [0-9]+\ *-?\ *(.*)$ ]]; then
		ok "guest: ${BASH_REMATCH[1]}"
	elif [[ $line =~ ^not\ ok\ [0-9]+\ *-?\ *(.*)$ ]]; then
		not_ok "guest: ${BASH_REMATCH[1]}"
	fi
done < <(grep -aE '^(not )?ok [0-9]+' "$tmp/console.log" 2>/dev/null || true)
check "guest reported test results" [ "$seen" -gt 0 ]
case $grc in
0) ok "guest test passed" ;;
124) not_ok "guest test passed (QEMU timed out after $guest_timeout s)" ;;
125) not_ok "guest test passed (guest never finished: QEMU failed or guest crashed)" ;;
*) not_ok "guest test passed (exit status $grc)" ;;
esac

# 4. The reference front-end on the same socket, same viod process.
if [ -n "$vioguest" ]; then
	hex=$("$vioguest" --socket "$sock" rng --bytes 64 --hex 2>&2 | tr -d ' \n' || true)
	check "viornd reads 64 bytes on the same socket after the guest" \
		[ "${#hex}" -eq 128 ]
fi

# 5. viod shuts down cleanly on SIGTERM and removes its socket.
check "viod was still running after the guest" kill -0 "$viod_pid"
kill -TERM "$viod_pid" 2>/dev/null || true
for _ in $(seq 100); do
	kill -0 "$viod_pid" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$viod_pid" 2>/dev/null; then
	not_ok "viod exited within 10 s of SIGTERM"
	kill -KILL "$viod_pid" 2>/dev/null || true
fi
vst=0
wait "$viod_pid" || vst=$?
viod_pid=""
check "viod exited with status 0 (got $vst)" [ "$vst" -eq 0 ]
check "viod removed its socket" [ ! -e "$sock" ]

echo "1..$n"
[ "$fails" -eq 0 ]
