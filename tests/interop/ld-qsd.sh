#!/usr/bin/env bash
# Interop: the ld reference driver (vioguest blk) against
# qemu-storage-daemon's vhost-user-blk export with 4 queues over a raw
# file with discard=unmap: config, data over several ranges and layouts,
# what the host file holds, flush, discard, write-zeroes, GET_ID, range
# checks in the driver and in the back-end, the throughput mode, and data
# surviving a back-end restart. The checks are ld-checks.sh's, shared
# with other back-ends.
#
# Usage: tests/interop/ld-qsd.sh VIOGUEST_BINARY
# Output: TAP. Skips (1..0) when qemu-storage-daemon is not installed.
set -uo pipefail

vioguest=${1:?usage: ld-qsd.sh VIOGUEST_BINARY}
QSD=${QSD:-qemu-storage-daemon}
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v "$QSD" >/dev/null 2>&1; then
	echo "1..0 # SKIP qemu-storage-daemon not installed"
	exit 0
fi
if [ ! -x "$vioguest" ]; then
	echo "Bail out! vioguest binary not found: $vioguest"
	exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/viod-ld-qsd.XXXXXX") || exit 1
qsd_pid=""
qsd_stop() {
	if [ -n "$qsd_pid" ]; then
		kill "$qsd_pid" 2>/dev/null
		wait "$qsd_pid" 2>/dev/null
	fi
	qsd_pid=""
}
trap 'qsd_stop; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM HUP PIPE

n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }

img=$dir/disk.img
sock=$dir/blk.sock
queues=4
truncate -s 64M "$img" || exit 1

# Starts qsd on $img and waits (10 s at most) for its socket.
qsd_start() {
	rm -f "$sock"
	"$QSD" --blockdev "file,filename=$img,node-name=d0,discard=unmap" \
		--export "vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=$sock,writable=on,num-queues=$queues" \
		>>"$dir/qsd.log" 2>&1 &
	qsd_pid=$!
	for _ in $(seq 100); do
		[ -S "$sock" ] && return 0
		kill -0 "$qsd_pid" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# /' "$dir/qsd.log"
	return 1
}

backend_restart() {
	qsd_stop
	qsd_start
}

if qsd_start; then
	ok "qemu-storage-daemon listens on its vhost-user-blk socket"
else
	not_ok "qemu-storage-daemon listens on its vhost-user-blk socket"
	echo "1..$n"
	exit 1
fi

. "$here/ld-checks.sh"
ld_checks "$sock" "$img" "$queues" 1

if kill -0 "$qsd_pid" 2>/dev/null; then
	ok "qemu-storage-daemon still running"
else
	not_ok "qemu-storage-daemon still running"
	sed 's/^/# /' "$dir/qsd.log"
fi
qsd_stop

echo "1..$n"
[ $fails -eq 0 ]
