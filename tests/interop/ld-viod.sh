#!/usr/bin/env bash
# Interop: the ld reference driver (vioguest blk) against viod's blk
# device, with the same checks as against qemu-storage-daemon
# (ld-checks.sh): 4 queues on 2 workers over a raw file, then viod's own
# promises: the store's counters by request type, a null back end, and a
# read-only device that refuses writes and leaves its image alone.
#
# Usage: tests/interop/ld-viod.sh VIOD_BINARY VIOGUEST_BINARY VIOD_STORE_BINARY
# Output: TAP.
set -uo pipefail

viod=${1:?usage: ld-viod.sh VIOD VIOGUEST VIOD_STORE}
vioguest=${2:?usage: ld-viod.sh VIOD VIOGUEST VIOD_STORE}
store=${3:?usage: ld-viod.sh VIOD VIOGUEST VIOD_STORE}
here=$(cd "$(dirname "$0")" && pwd)

for b in "$viod" "$vioguest" "$store"; do
	[ -x "$b" ] || { echo "Bail out! not executable: $b"; exit 1; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/viod-ld-viod.XXXXXX") || exit 1
viod_pid=""
viod_stop() {
	if [ -n "$viod_pid" ]; then
		kill "$viod_pid" 2>/dev/null
		wait "$viod_pid" 2>/dev/null
	fi
	viod_pid=""
}
trap 'viod_stop; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM HUP PIPE

n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }

img=$dir/disk.img
sock=$dir/blk.sock
ctl=$dir/control
queues=4
spec="blk,id=d0,socket=$sock,path=$img,num-queues=$queues,workers=2,serial=viod-ld-test"
truncate -s 64M "$img" || exit 1

# Starts viod with $spec and waits (10 s at most) for its sockets.
viod_start() {
	rm -f "$sock"
	"$viod" --control "$ctl" --device "$spec" >>"$dir/viod.log" 2>&1 &
	viod_pid=$!
	for _ in $(seq 100); do
		[ -S "$sock" ] && [ -S "$ctl" ] && return 0
		kill -0 "$viod_pid" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/# /' "$dir/viod.log"
	return 1
}

backend_restart() {
	viod_stop
	viod_start
}

# key PATH: a store key of device d0.
key() { "$store" -s "$ctl" read "/devices/d0/$1" 2>/dev/null; }
# key_at_least PATH N: polls (5 s) until the key reads N or more.
key_at_least() {
	local v
	for _ in $(seq 50); do
		v=$(key "$1")
		[ -n "$v" ] && [ "$v" -ge "$2" ] 2>/dev/null && return 0
		sleep 0.1
	done
	echo "# $1 = '${v:-}'"
	return 1
}
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

if viod_start; then
	ok "viod serves a blk device on 4 queues"
else
	not_ok "viod serves a blk device on 4 queues"
	echo "1..$n"
	exit 1
fi

. "$here/ld-checks.sh"
ld_checks "$sock" "$img" "$queues" 1

# ---- the store's view of what the driver did (since the restart) ----
ld_sock=$sock
ld_run "write" blk write --sector 2048 --count 8 --pattern 7
ld_run "flush" blk flush
ld_run "get-id" blk get-id
check "GET_ID gives the serial" grep -q "viod-ld-test" "$dir/out"
ld_run "discard" blk discard --sector 4096 --count 8
ld_run "write-zeroes" blk write-zeroes --sector 4096 --count 8
ld_run "read" blk read --sector 2048 --count 8 --out "$dir/r"
for k in read write flush get-id discard write-zeroes; do
	check "store: requests/$k counted" key_at_least "requests/$k" 1
done
check "store: bytes/read counted" key_at_least bytes/read 4096
check "store: bytes/written counted" key_at_least bytes/written 4096
check "store: image/size is the image's size" [ "$(key image/size)" = "$(stat -c %s "$img")" ]
check "store: image/path" [ "$(key image/path)" = "$img" ]
"$vioguest" --socket "$sock" blk bench --rw randread --queues 4 --qd 8 --requests 4000 >/dev/null 2>"$dir/err"
for q in 0 1 2 3; do
	check "store: queue $q served requests" key_at_least "queues/$q/requests" 1
done
check "store: nothing in flight once the driver left" [ "$(key in-flight)" = 0 ]
if kill -0 "$viod_pid" 2>/dev/null; then ok "viod still running"; else not_ok "viod still running"; fi
viod_stop

# ---- a read-only device ----
spec="blk,id=d0,socket=$sock,path=$img,read-only=on"
sum0=$(md5sum <"$img")
if viod_start; then
	ld_sock=$sock
	ld_run "read-only: blk info" blk info
	check "read-only: the device says so" grep -q "^readonly=1" "$dir/out"
	check "read-only: no discard or write-zeroes offered" sh -c "! grep -q '^features=.*discard' $dir/out"
	ld_run "read-only: reads are served" blk read --sector 0 --count 8 --out "$dir/r"
	"$vioguest" --socket "$sock" blk raw --type out --sector 0 --out-len 4096 >"$dir/out" 2>"$dir/err"
	check "read-only: a write gets IOERR" grep -q "status=1" "$dir/out"
	"$vioguest" --socket "$sock" blk raw --type discard --seg-sector 0 --seg-count 8 >"$dir/out" 2>"$dir/err"
	check "read-only: a discard gets IOERR" grep -q "status=1" "$dir/out"
	check "read-only: the image is unchanged" [ "$(md5sum <"$img")" = "$sum0" ]
else
	not_ok "read-only: viod starts"
fi
viod_stop

# ---- the null back end ----
spec="blk,id=d0,socket=$sock,backend=null,size=64M,num-queues=2"
if viod_start; then
	ld_sock=$sock
	ld_run "null: blk info" blk info
	check "null: 64 MiB" [ "$(ld_field capacity)" = 131072 ]
	ld_run "null: bench" blk bench --rw randwrite --queues 2 --qd 16 --requests 2000
	check "null: the image file is untouched" [ "$(md5sum <"$img")" = "$sum0" ]
else
	not_ok "null: viod starts"
fi
viod_stop

echo "1..$n"
[ $fails -eq 0 ]
