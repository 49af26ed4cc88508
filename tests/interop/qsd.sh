#!/bin/sh
# Interop: our vhost-user front-end (vioguest) against qemu-storage-daemon's
# vhost-user-blk export, a back-end nobody here wrote. Proves the handshake,
# multi-region memory tables, config space and queue setup/teardown are not
# tuned to viod.
#
# Usage: tests/interop/qsd.sh VIOGUEST_BINARY
# Output: TAP. Skips (1..0) when qemu-storage-daemon is not installed.
set -u

vioguest=${1:?usage: qsd.sh VIOGUEST_BINARY}
QSD=${QSD:-qemu-storage-daemon}

if ! command -v "$QSD" >/dev/null 2>&1; then
	echo "1..0 # SKIP qemu-storage-daemon not installed"
	exit 0
fi
if [ ! -x "$vioguest" ]; then
	echo "Bail out! vioguest binary not found: $vioguest"
	exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/viod-qsd.XXXXXX") || exit 1
qsd_pid=""
cleanup() {
	if [ -n "$qsd_pid" ]; then
		kill "$qsd_pid" 2>/dev/null
		wait "$qsd_pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /' "$@"; }

img=$dir/disk.img
sock=$dir/blk.sock
# 64 MiB = 131072 sectors of 512 bytes.
truncate -s 64M "$img" || exit 1

"$QSD" --blockdev "file,filename=$img,node-name=d0" \
	--export "vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=$sock,writable=on" \
	>"$dir/qsd.log" 2>&1 &
qsd_pid=$!

i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ] && kill -0 "$qsd_pid" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if [ -S "$sock" ]; then
	ok "qemu-storage-daemon listens on its vhost-user-blk socket"
else
	not_ok "qemu-storage-daemon listens on its vhost-user-blk socket"
	diag "$dir/qsd.log"
	echo "1..$n"
	exit 1
fi

# run NAME ARGS...: runs vioguest, output in $dir/out, status in $rc.
run() {
	name=$1
	shift
	"$vioguest" --socket "$sock" "$@" >"$dir/out" 2>"$dir/err"
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "$name"
	else
		not_ok "$name (exit $rc)"
		diag "$dir/err"
	fi
}

# field KEY: value of KEY=... in $dir/out.
field() { sed -n "s/^$1=//p" "$dir/out"; }

run "info handshake" info --config-size 60 --virtio-id 2
cap=$(field capacity)
if [ "$cap" = 131072 ]; then
	ok "capacity is 131072 sectors"
else
	not_ok "capacity is 131072 sectors (got '${cap:-nothing}')"
	diag "$dir/out"
fi
acked=$(field features_acked)
# VIRTIO_F_VERSION_1 is bit 32.
if [ -n "$acked" ] && [ $(( (acked >> 32) & 1 )) -eq 1 ]; then
	ok "VIRTIO_F_VERSION_1 negotiated"
else
	not_ok "VIRTIO_F_VERSION_1 negotiated (features_acked '${acked:-nothing}')"
fi
cfg=$(field config)
if [ ${#cfg} -eq 120 ]; then
	ok "60 config bytes read"
else
	not_ok "60 config bytes read (got ${#cfg} hex digits)"
fi

# Guest memory in 4 non-contiguous regions; rings land in them.
run "4 regions, queue set up and stopped" --regions 4 --memory 16M \
	info --config-size 8 --virtio-id 2 --queues 1 --queue-size 256
cap=$(field capacity)
base=$(field queue0_base)
if [ "$cap" = 131072 ] && [ "$base" = 0 ]; then
	ok "4 regions: capacity 131072, GET_VRING_BASE 0"
else
	not_ok "4 regions: capacity 131072, GET_VRING_BASE 0 (got '$cap', '$base')"
	diag "$dir/out"
fi

# Memory through ADD_MEM_REG when the back-end offers CONFIGURE_MEM_SLOTS.
run "ADD_MEM_REG with 8 regions" --regions 8 --add-mem-reg \
	info --config-size 8 --virtio-id 2 --queues 1
[ "$(field capacity)" = 131072 ] && ok "ADD_MEM_REG: capacity 131072" ||
	not_ok "ADD_MEM_REG: capacity 131072"

# A config read beyond what the device has must fail cleanly (exit 1, one
# line on stderr), never crash.
"$vioguest" --socket "$sock" info --config-size 256 >"$dir/out" 2>"$dir/err"
rc=$?
lines=$(wc -l <"$dir/err")
if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q '^vioguest: ' "$dir/err"; then
	ok "oversized GET_CONFIG refused: exit 1, one-line error"
else
	not_ok "oversized GET_CONFIG refused: exit 1, one-line error (exit $rc, $lines lines)"
	diag "$dir/err"
fi

if kill -0 "$qsd_pid" 2>/dev/null; then
	ok "qemu-storage-daemon still running"
else
	not_ok "qemu-storage-daemon still running"
	diag "$dir/qsd.log"
fi
kill "$qsd_pid" 2>/dev/null
wait "$qsd_pid" 2>/dev/null
qsd_pid=""

echo "1..$n"
[ $fails -eq 0 ]
