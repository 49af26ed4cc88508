#!/usr/bin/env bash
# Guest test: a Linux guest's virtio_blk on viod's blk device, through
# QEMU's vhost-user-blk-pci, with ext4 on top (blk-guest.sh is the guest
# side). Five boots:
#   1q write, 1q verify: one queue, one CPU, one viod for both boots: the
#     guest makes ext4, writes files, records their md5sums and powers off;
#     the next boot finds the same md5sums, deletes the data files and runs
#     fstrim, after which the image has fewer blocks allocated and viod
#     counted discards.
#   4q write, 4q verify: the same with num-queues=4 on viod and QEMU and
#     four guest CPUs, one pinned writer per CPU; viod's store shows
#     requests on each of the four queues; the verify boot runs on a
#     restarted viod.
#   ro: viod with read-only=on on the 1q image: the guest sees a read-only
#     disk whose writes fail, mounts the file system read-only and reads
#     a file back; the image's checksum does not change.
# Usage: blk.sh VIOD VIOD-STORE. TAP on stdout; logs (console, viod) on
# stderr. SKIPs only when QEMU is missing.
# Environment: VIOD_QEMU (QEMU binary, default qemu-system-x86_64),
# VIOD_GUEST_TIMEOUT (seconds per boot, default 120), VIOD_CACHE (see
# tools/guest/build-guest.sh).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
qemu=${VIOD_QEMU:-qemu-system-x86_64}
guest_timeout=${VIOD_GUEST_TIMEOUT:-120}
[ $# -eq 2 ] || { echo "usage: $0 VIOD VIOD-STORE" >&2; exit 2; }
viod=$1 vstore=$2
if ! command -v "$qemu" >/dev/null; then
	echo "1..0 # SKIP $qemu not found"
	exit 0
fi

n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-blk.XXXXXX")
sock=$tmp/d0.sock
pid="" gen=0
cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	for ((k = 1; k <= gen; k++)); do
		[ -s "$tmp/viod$k.log" ] && sed "s/^/viod#$k: /" "$tmp/viod$k.log" >&2
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# key PATH: the running viod's store key PATH under /devices/d0, or -1.
key() { "$vstore" --socket "$tmp/ctl$gen" read "/devices/d0/$1" 2>/dev/null || echo -1; }
# wait_for COMMAND...: polls every 0.1 s for 30 s at least; the last status.
wait_for() {
	for _ in $(seq 300); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}
key_gt() { [ "$(key "$1")" -gt "$2" ]; } # KEY VALUE
blocks() { stat -c %b "$1"; }             # IMAGE: 512-byte blocks allocated

# start_viod OPTIONS: the next viod serving d0 with OPTIONS (path=...);
# waits for its sockets.
start_viod() {
	gen=$((gen + 1))
	"$viod" --control "$tmp/ctl$gen" --device "blk,id=d0,socket=$sock,$1" \
		>"$tmp/viod$gen.log" 2>&1 &
	pid=$!
	for _ in $(seq 200); do
		[ -S "$sock" ] && [ -S "$tmp/ctl$gen" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "Bail out! viod#$gen ($1) did not start"
	exit 1
}
# stop_viod: SIGTERM to the running viod; checks that it exits 0.
stop_viod() {
	local st
	kill -TERM "$pid"
	wait "$pid"
	st=$?
	pid=""
	check "viod#$gen exits 0 on SIGTERM (status $st)" [ "$st" -eq 0 ]
}

# boot NAME PHASE QUEUES IMAGE: one guest on the running viod, running
# blk-guest.sh's PHASE; its TAP lines become ours, prefixed with NAME. Its
# "MD5 FILE SUM" lines go to $tmp/NAME.md5 (sorted). For the verify phase
# it measures the image and viod's discard count when the guest is about
# to run fstrim (TRIM-READY) and after (TRIM-DONE): trim_before,
# trim_after, discard_before, discard_after.
boot() {
	local name=$1 phase=$2 queues=$3 img=$4 line rgs t0=$SECONDS
	local qargs=(-device "vhost-user-blk-pci,chardev=c0,num-queues=$queues")
	trim_before=-1 trim_after=-1 discard_before=-1 discard_after=-1
	: >"$tmp/$name.md5"
	while IFS= read -r line; do
		printf '%s\n' "$line" >>"$tmp/$name.console"
		case $line in
		"ok "*) ok "$name: guest: ${line#ok [0-9]* - }" ;;
		"not ok "*) not_ok "$name: guest: ${line#not ok [0-9]* - }" ;;
		"# "*) echo "$line" ;;
		"MD5 "*) echo "${line#MD5 }" >>"$tmp/$name.md5" ;;
		TRIM-READY*)
			trim_before=$(blocks "$img")
			discard_before=$(key requests/discard)
			echo GO 1<>"$tmp/host-$name.in"
			;;
		TRIM-DONE*)
			trim_after=$(blocks "$img")
			# The store publishes counters within 50 ms of a change.
			wait_for key_gt requests/discard "$discard_before"
			discard_after=$(key requests/discard)
			;;
		esac
	done < <("$top/tools/guest/run-guest.sh" --kernel "$dir/vmlinuz" --initrd "$dir/initrd.img" \
		--qemu "$qemu" --timeout "$guest_timeout" --smp "$queues" --script "$here/blk-guest.sh" \
		--host-channel "$tmp/host-$name" \
		--append "console=ttyS0 panic=-1 quiet viod.phase=$phase viod.queues=$queues" -- \
		-chardev "socket,id=c0,path=$sock" "${qargs[@]}" 2>"$tmp/$name.err"
		echo "RUN-GUEST-STATUS $?")
	rgs=$(sed -n 's/^RUN-GUEST-STATUS //p' "$tmp/$name.console")
	sort -o "$tmp/$name.md5" "$tmp/$name.md5"
	if [ "$rgs" = 0 ]; then
		ok "$name: guest passed and powered off ($((SECONDS - t0)) s)"
	else
		not_ok "$name: guest passed and powered off (run-guest status ${rgs:-unknown}, $((SECONDS - t0)) s)"
		cat "$tmp/$name.err" >&2
		tail -n 40 "$tmp/$name.console" | sed "s/^/$name console: /" >&2
	fi
}

# ext4_round_trip TAG QUEUES RESTART: the write and verify boots on a
# fresh image $tmp/TAG.img, with viod restarted between them if RESTART
# is 1.
ext4_round_trip() {
	local tag=$1 queues=$2 restart=$3 img=$tmp/$1.img q r missing=""
	truncate -s 128M "$img"
	start_viod "path=$img,num-queues=$queues"
	check "$tag: viod#$gen has $queues queues" [ "$(key num-queues)" = "$queues" ]
	boot "$tag-write" write "$queues" "$img"
	check "$tag: the guest recorded 5 md5sums" [ "$(wc -l <"$tmp/$tag-write.md5")" -eq 5 ]
	if [ "$queues" -gt 1 ]; then
		for ((q = 0; q < queues; q++)); do
			r=$(key "queues/$q/requests")
			[ "$r" -gt 0 ] || missing+=" $q"
			echo "# $tag: queue $q: $r requests"
		done
		check "$tag: every one of the $queues queues served requests${missing:+ (not:$missing)}" \
			[ -z "$missing" ]
	fi
	check "$tag: viod counted no request errors ($(key errors))" [ "$(key errors)" = 0 ]
	if [ "$restart" = 1 ]; then
		stop_viod
		start_viod "path=$img,num-queues=$queues"
	fi
	boot "$tag-verify" verify "$queues" "$img"
	if [ -s "$tmp/$tag-write.md5" ] && cmp -s "$tmp/$tag-write.md5" "$tmp/$tag-verify.md5"; then
		ok "$tag: the second boot read the files back with the md5sums of the first"
	else
		not_ok "$tag: the second boot read the files back with the md5sums of the first"
		diff "$tmp/$tag-write.md5" "$tmp/$tag-verify.md5" | sed 's/^/# /'
	fi
	check "$tag: fstrim left fewer blocks allocated in the image ($trim_before -> $trim_after)" \
		[ "$trim_after" -ge 0 -a "$trim_after" -lt "$trim_before" ]
	check "$tag: viod counted discards for fstrim (requests/discard $discard_before -> $discard_after)" \
		[ "$discard_before" -ge 0 -a "$discard_after" -gt "$discard_before" ]
	check "$tag: viod counted no request errors ($(key errors))" [ "$(key errors)" = 0 ]
	stop_viod
}

if ! dir=$("$top/tools/guest/build-guest.sh" | tail -n 1) || [ ! -s "$dir/vmlinuz" ]; then
	echo "Bail out! cannot build the guest image"
	exit 1
fi
ok "guest image built ($dir)"
echo "# QEMU: $(command -v "$qemu") ($("$qemu" --version | head -n 1))"

ext4_round_trip 1q 1 0
ext4_round_trip 4q 4 1

# Read-only, on the 1q image: ext4 with "buffered" and MD5SUMS on it.
img=$tmp/1q.img
sum0=$(md5sum <"$img")
start_viod "path=$img,read-only=on"
check "ro: the store says image/read-only on" [ "$(key image/read-only)" = on ]
boot ro ro 1 "$img"
check "ro: the image is unchanged" [ "$(md5sum <"$img")" = "$sum0" ]
w=$(key requests/write) e=$(key errors)
# Linux refuses writes to a read-only disk itself (EPERM), so viod sees
# none from it; any that came would have to fail.
check "ro: every write request viod got failed (writes $w, failed requests $e)" \
	[ "$w" -ge 0 -a "$w" = "$e" ]
stop_viod

echo "1..$n"
[ "$fails" -eq 0 ]
