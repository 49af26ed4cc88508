#!/usr/bin/env bash
# Cross-check of bench/blk.sh with a client nobody here wrote: fio in a
# Linux guest (QEMU, TCG) on vhost-user-blk-pci, 4 KiB random reads at
# queue depth 32 (libaio, O_DIRECT), against viod and against
# qemu-storage-daemon (iothread, O_DIRECT, io_uring) on the same image,
# in one run. Under TCG the guest itself is slow, so the figures are far
# below the ld driver's; what they check is the ordering and that the
# guest's numbers do not contradict bench/blk.sh.
#
# Usage: bench/blk-fio.sh [BUILD_DIR]
# Needs fio on the host (installed with apt-get if missing): the guest
# gets the host's fio binary and the libraries it links, appended to the
# guest image's initramfs. Environment: BENCH_SECONDS (fio runtime, 10).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
secs=${BENCH_SECONDS:-10}
qsd=${QSD:-qemu-storage-daemon}
viod=$build/viod
[ -x "$viod" ] || { echo "bench: build first: $viod" >&2; exit 2; }
if ! command -v fio >/dev/null; then
	echo "bench: installing fio" >&2
	${SUDO:-} apt-get install -y -q fio >/dev/null
fi

tmp=$(mktemp -d "${BENCH_DIR:-/var/tmp}/viod-bench-fio.XXXXXX")
pid=""
stop() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	pid=""
}
trap 'stop; rm -rf "$tmp"' EXIT
img=$tmp/disk.img
sock=$tmp/blk.sock
dd if=/dev/urandom of="$img" bs=1M count=256 status=none conv=fsync

# The guest image plus fio and its shared libraries.
guest=$("$top/tools/guest/build-guest.sh" | tail -n 1)
mkdir -p "$tmp/root/usr/bin"
cp "$(command -v fio)" "$tmp/root/usr/bin/fio"
ldd "$(command -v fio)" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
	while read -r lib; do
		mkdir -p "$tmp/root$(dirname "$lib")"
		cp -L "$lib" "$tmp/root$lib"
	done
cp "$guest/initrd.img" "$tmp/initrd"
# Concatenated archives: the kernel unpacks them in turn.
(cd "$tmp/root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) >>"$tmp/initrd"

cat >"$tmp/fio.sh" <<EOF
#!/bin/sh
fio --name=cross --filename=/dev/vda --rw=randread --bs=4k --iodepth=32 \
	--ioengine=libaio --direct=1 --runtime=$secs --time_based --size=256m \
	--output-format=terse --terse-version=3 >/tmp/fio.out 2>/tmp/fio.err || cat /tmp/fio.err
# Terse v3: field 8 is read IOPS.
echo "FIO-IOPS \$(cut -d';' -f8 /tmp/fio.out)"
EOF

start() {
	rm -f "$sock"
	case $1 in
	viod)
		"$viod" --device "blk,id=d0,socket=$sock,path=$img,direct=on" >"$tmp/server.log" 2>&1 & ;;
	qsd)
		"$qsd" --object iothread,id=io0 \
			--blockdev "file,filename=$img,node-name=d0,cache.direct=on,aio=io_uring" \
			--export "vhost-user-blk,id=e0,node-name=d0,iothread=io0,addr.type=unix,addr.path=$sock,writable=on" \
			>"$tmp/server.log" 2>&1 & ;;
	esac
	pid=$!
	for _ in $(seq 200); do
		[ -S "$sock" ] && return 0
		sleep 0.05
	done
	cat "$tmp/server.log" >&2
	exit 1
}

declare -A iops
for srv in viod qsd; do
	start "$srv"
	"$top/tools/guest/run-guest.sh" --kernel "$guest/vmlinuz" --initrd "$tmp/initrd" \
		--script "$tmp/fio.sh" --memory 768 --timeout $((secs + 120)) \
		--log "$tmp/console-$srv.log" -- \
		-chardev "socket,id=c0,path=$sock" -device vhost-user-blk-pci,chardev=c0 \
		>/dev/null 2>&1 || true
	iops[$srv]=$(sed -n 's/^FIO-IOPS \([0-9]*\).*/\1/p' "$tmp/console-$srv.log" | tail -n 1)
	stop
	if [ -z "${iops[$srv]}" ]; then
		echo "bench: no fio result on $srv:" >&2
		tail -n 20 "$tmp/console-$srv.log" >&2
		exit 1
	fi
done
printf 'fio in a TCG guest, 4 KiB randread, iodepth 32, libaio, O_DIRECT, %s s\n' "$secs"
printf '%-6s %10s\n' viod "${iops[viod]}" qsd "${iops[qsd]}"
awk -v v="${iops[viod]}" -v q="${iops[qsd]}" 'BEGIN { printf "ratio viod/qsd %.2fx\n", (q > 0 ? v / q : 0) }'
