#!/usr/bin/env bash
# Guest test: a Linux guest's virtio_balloon on viod's balloon, through the
# generic vhost-user-device-pci (virtio-id 5) of the patched QEMU. The host
# operator's tool, balloonctl, inflates the balloon to a target and back to
# zero, several times; the test checks the guest's own counters, viod's
# host-freed figure, the host memory QEMU's memfd really holds, the guest's
# statistics, and that the cycles end where they started.
# Usage: balloon.sh VIOD BALLOONCTL VIOD-STORE. TAP on stdout, logs on stderr.
# Environment: VIOD_PATCHED_QEMU (required: stock QEMU refuses the device).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
[ $# -eq 3 ] || { echo "usage: $0 VIOD BALLOONCTL VIOD-STORE" >&2; exit 2; }
viod=$1 bctl=$2 vstore=$3
qemu=${VIOD_PATCHED_QEMU:-}
pages=16384 # 64 MiB
cycles=3
if [ -z "$qemu" ] || [ ! -x "$qemu" ]; then
	echo "1..0 # SKIP VIOD_PATCHED_QEMU not set (tools/build-qemu.sh builds it)"
	exit 0
fi

n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-balloon.XXXXXX")
sock=$tmp/b0.sock ctl=$tmp/control
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -s "$tmp/viod.log" ] && sed 's/^/viod: /' "$tmp/viod.log" >&2
	rm -rf "$tmp"
}
trap cleanup EXIT

key() { "$vstore" --socket "$ctl" read "/devices/b0/$1" 2>/dev/null || echo -1; }
dir=$("$top/tools/guest/build-guest.sh" | tail -n 1)
"$viod" --control "$ctl" --device "balloon,id=b0,socket=$sock,stats-interval=1" \
	>"$tmp/viod.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && [ -S "$ctl" ] && break; sleep 0.05; done

# Host bytes behind the guest RAM of our QEMU.
memfd_bytes() { "$top/tools/guest/qemu-memfd.sh" "path=$sock"; }

plan() {
	local c freed0 freed1 alloc0 alloc1 page=4096 floor=
	for c in $(seq "$cycles"); do
		freed0=$(key host-freed)
		alloc0=$(memfd_bytes)
		if "$bctl" --socket "$ctl" set b0 "$pages" --wait --timeout 120 >&2; then
			ok "cycle $c: balloonctl set $pages --wait reached the target"
		else
			not_ok "cycle $c: balloonctl set $pages --wait"
		fi
		freed1=$(key host-freed)
		alloc1=$(memfd_bytes)
		check "cycle $c: viod freed about the balloon's size ($((freed1 - freed0)) bytes)" \
			[ $((freed1 - freed0)) -ge $((pages * page * 9 / 10)) ]
		# The first inflate takes memory the guest had backed; later ones
		# take pages the guest zeroes (backs) and viod punches right away,
		# so QEMU's memfd must stay at the level the first one reached.
		if [ -z "$floor" ]; then
			check "cycle $c: QEMU's memfd holds $(((alloc0 - alloc1) >> 20)) MiB less" \
				[ $((alloc0 - alloc1)) -ge $((pages * page * 8 / 10)) ]
			floor=$alloc1
		else
			check "cycle $c: QEMU's memfd stays released ($((alloc1 >> 20)) MiB, first $((floor >> 20)) MiB)" \
				[ "$alloc1" -le $((floor + pages * page / 10)) ]
		fi
		check "cycle $c: device holds $pages pages" [ "$(key inflated)" -eq "$pages" ]
		if "$bctl" --socket "$ctl" set b0 0 --wait --timeout 120 >&2; then
			ok "cycle $c: deflated to zero"
		else
			not_ok "cycle $c: deflate to zero"
		fi
		check "cycle $c: device holds no pages" [ "$(key inflated)" -eq 0 ]
	done
}

planned=0 memtotal=0 inf=0 def=0 refilled=0
while IFS= read -r line; do
	printf '%s\n' "$line" >>"$tmp/console"
	case $line in
	"ok "* | "not ok "*)
		case $line in ok*) ok "guest: ${line#ok [0-9]* - }" ;; *) not_ok "guest: ${line#not ok [0-9]* - }" ;; esac ;;
	GUEST-MEMTOTAL*) memtotal=${line#GUEST-MEMTOTAL } ;;
	VIOD-BALLOON-READY*)
		stats=$(key stats/updates)
		check "guest statistics arrived (updates=$stats)" [ "${stats:-0}" -ge 1 ]
		check "stats: free-memory reported" [ -n "$(key stats/free-memory)" ]
		check "guest memory known to viod ($(key guest-memory) bytes)" [ "$(key guest-memory)" -gt 0 ]
		plan
		planned=1
		;;
	GUEST-DONE*)
		inf=$(sed -n 's/.*inflate=\([0-9]*\).*/\1/p' <<<"$line")
		def=$(sed -n 's/.*deflate=\([0-9]*\).*/\1/p' <<<"$line")
		;;
	GUEST-REFILLED*) refilled=1 ;;
	esac
done < <("$top/tools/guest/run-guest.sh" --kernel "$dir/vmlinuz" --initrd "$dir/initrd.img" \
	--qemu "$qemu" --memory 512 --timeout 400 --script "$here/balloon-guest.sh" \
	--append "console=ttyS0 panic=-1 quiet viod.pages=$pages viod.cycles=$cycles" -- \
	-chardev "socket,id=c0,path=$sock" \
	-device vhost-user-device-pci,virtio-id=5,num_vqs=4,config_size=16,chardev=c0 2>&2)

check "the host plan ran" [ "$planned" -eq 1 ]
check "guest saw $((pages * cycles)) pages inflated (balloon_inflate=$inf)" [ "$inf" -ge $((pages * cycles)) ]
check "guest saw them all deflated (balloon_deflate=$def)" [ "$def" -ge $((pages * cycles)) ]
check "guest could use the returned memory again" [ "$refilled" -eq 1 ]
check "guest reported its memory (MemTotal $memtotal kB)" [ "$memtotal" -gt 0 ]
check "cycles end where they started: actual 0" [ "$(key actual)" = 0 ]
check "no PFN errors" [ "$(key errors)" = 0 ]
check "viod still running" kill -0 "$pid"
kill -TERM "$pid"; wait "$pid"; st=$?; pid=""
check "viod exits 0" [ "$st" -eq 0 ]
echo "1..$n"
[ "$fails" -eq 0 ]
