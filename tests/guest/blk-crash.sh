#!/usr/bin/env bash
# Guest test: viod's blk device survives kill -9 under a writing guest.
# The guest writes numbered 64 KiB blocks to the raw disk (O_DIRECT, fsync
# after each) and prints "SYNCED i" after each (blk-crash-guest.sh); the
# host kills viod with SIGKILL once the guest has synced some blocks, at a
# moment viod has requests in flight (kill-in-flight.py watches its
# inflight region; the guest keeps I/O going in the background), starts a
# new viod on the same socket and image, and QEMU's vhost-user-blk
# reconnects (chardev reconnect-ms) and hands the new viod the inflight
# region, from which it resubmits those requests; the guest goes on.
# Twice. Checks: no write, fsync or read failed in the guest and its
# kernel logged no I/O error; QEMU reconnected to each new viod (its store
# says connected); each new viod resubmitted exactly the requests that
# were in flight; every block the guest reported SYNCED holds its exact
# pattern in the image.
#
# Usage: blk-crash.sh VIOD VIOD-STORE. TAP on stdout; logs (console, viod)
# on stderr. SKIPs only when QEMU or python3 is missing.
# Environment: VIOD_QEMU (QEMU binary, default qemu-system-x86_64; stock
# QEMU 10.0's vhost-user-blk-pci reconnects by itself, unlike its
# vhost-user-base devices, see rng-reconnect.sh; not the patched build of
# tools/build-qemu.sh, whose vhost-user-blk rings (1024 entries under
# Linux) are larger than the queue size (128) it asks GET_INFLIGHT_FD
# for, so that viod tracks no request in flight and the kills find none
# to resubmit), VIOD_GUEST_TIMEOUT
# (seconds for the whole guest run, default 120), VIOD_BLK_CRASH_BLOCKS
# (default 120), VIOD_BLK_CRASH_KILLS (default 2), VIOD_CACHE.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
qemu=${VIOD_QEMU:-qemu-system-x86_64}
guest_timeout=${VIOD_GUEST_TIMEOUT:-120}
blocks=${VIOD_BLK_CRASH_BLOCKS:-120}
kills=${VIOD_BLK_CRASH_KILLS:-2}
first_kill=20 # SYNCED blocks before the first kill
kill_gap=40   # SYNCED blocks after a reconnect before the next kill
[ $# -eq 2 ] || { echo "usage: $0 VIOD VIOD-STORE" >&2; exit 2; }
viod=$1 vstore=$2
[[ $blocks =~ ^[1-9][0-9]*$ ]] || { echo "VIOD_BLK_CRASH_BLOCKS: not a count: $blocks" >&2; exit 2; }
[[ $kills =~ ^[0-9]+$ ]] || { echo "VIOD_BLK_CRASH_KILLS: not a count: $kills" >&2; exit 2; }
if [ $((first_kill + (kills - 1) * kill_gap + 20)) -gt "$blocks" ]; then
	echo "VIOD_BLK_CRASH_BLOCKS=$blocks leaves no room for $kills kills" >&2
	exit 2
fi
for t in "$qemu" python3; do
	if ! command -v "$t" >/dev/null; then
		echo "1..0 # SKIP $t not found"
		exit 0
	fi
done

n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-blk-crash.XXXXXX")
sock=$tmp/d0.sock img=$tmp/disk.img
pid="" gen=0
cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	for ((k = 1; k <= gen; k++)); do
		[ -s "$tmp/viod$k.log" ] && sed "s/^/viod#$k: /" "$tmp/viod$k.log" >&2
	done
	[ "$fails" -gt 0 ] && [ -s "$tmp/console" ] && tail -n 40 "$tmp/console" | sed 's/^/console: /' >&2
	rm -rf "$tmp"
}
trap cleanup EXIT

# key K PATH: viod number K's store key PATH under /devices/d0, or -1.
key() { "$vstore" --socket "$tmp/ctl$1" read "/devices/d0/$2" 2>/dev/null || echo -1; }
# wait_for COMMAND...: polls every 0.1 s for 30 s at least; the last status.
wait_for() {
	for _ in $(seq 300); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}
connected() { [ "$(key "$1" state)" = connected ]; }
listening() { [ -S "$sock" ] && [ -S "$tmp/ctl$1" ]; }
# resubmitted K: requests viod number K says it resubmitted (status 1: none).
resubmitted() {
	local r
	r=$(sed -n 's/.*resubmitting \([0-9]*\) requests.*/\1/p' "$tmp/viod$1.log" |
		awk '{ s += $1 } END { print s + 0 }')
	echo "$r"
	[ "$r" -gt 0 ]
}

# start_viod: the next viod on the socket and image; waits for its sockets.
start_viod() {
	gen=$((gen + 1))
	"$viod" --verbose --control "$tmp/ctl$gen" \
		--device "blk,id=d0,socket=$sock,path=$img" >"$tmp/viod$gen.log" 2>&1 &
	pid=$!
	for _ in $(seq 200); do
		listening "$gen" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# pattern I: block I's 64 KiB, as the guest writes it.
pattern() { yes "$(printf 'viod-blk-%06d' "$1")" | head -c 65536; }

if ! dir=$("$top/tools/guest/build-guest.sh" | tail -n 1) || [ ! -s "$dir/vmlinuz" ]; then
	echo "Bail out! cannot build the guest image"
	exit 1
fi
ok "guest image built ($dir)"
echo "# QEMU: $(command -v "$qemu") ($("$qemu" --version | head -n 1))"

# Blocks 1..N, then the guest's 8 MiB of scratch (blk-crash-guest.sh).
truncate -s $(((blocks + 1) * 65536 + (8 << 20))) "$img"
start_viod || { echo "Bail out! viod did not start"; exit 1; }
ok "viod#1 listening"

declare -A synced=()
killed=0 next_kill=$first_kill done_line="" t0=$SECONDS
while IFS= read -r line; do
	printf '%s\n' "$line" >>"$tmp/console"
	case $line in
	"SYNCED "*)
		i=${line#SYNCED }
		synced[$i]=1
		if [ "$killed" -lt "$kills" ] && [ "$i" -ge "$next_kill" ]; then
			killed=$((killed + 1))
			# SIGKILL at a moment viod has requests in flight, read
			# from its inflight region (kill-in-flight.py).
			out=$(python3 "$here/kill-in-flight.py" "$pid" 1 30)
			# It kills viod in every case but a missing region.
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			pid=""
			nin=$(sed -n 's/^in-flight \([0-9]*\).*/\1/p' <<<"$out")
			check "kill $killed: viod#$gen killed (SIGKILL) with requests in flight, after the guest synced block $i ($out)" \
				[ "${nin:-0}" -gt 0 ]
			# Its socket file stays behind; QEMU's reconnect attempts
			# fail until the new viod listens.
			rm -f "$sock"
			if start_viod; then
				ok "kill $killed: viod#$gen listening on the same socket and image"
			else
				not_ok "kill $killed: viod#$gen listening on the same socket and image"
			fi
			if wait_for connected "$gen"; then
				ok "kill $killed: QEMU reconnected to viod#$gen"
			else
				not_ok "kill $killed: QEMU reconnected to viod#$gen within 30 s (state $(key "$gen" state))"
			fi
			# QEMU hands the inflight region back as it starts the ring.
			[ "${nin:-0}" -eq 0 ] || wait_for resubmitted "$gen" >/dev/null
			check "kill $killed: viod#$gen resubmitted the $nin requests in flight ($(resubmitted "$gen"))" \
				[ "$(resubmitted "$gen")" = "${nin:-0}" ]
			next_kill=$((i + kill_gap))
		fi
		;;
	"FAILED "*) echo "# guest: $line" ;;
	CRASH-DONE*) done_line=$line ;;
	"ok "* | "not ok "*)
		case $line in
		ok*) ok "guest: ${line#ok [0-9]* - }" ;;
		*) not_ok "guest: ${line#not ok [0-9]* - }" ;;
		esac
		;;
	esac
done < <("$top/tools/guest/run-guest.sh" --kernel "$dir/vmlinuz" --initrd "$dir/initrd.img" \
	--qemu "$qemu" --timeout "$guest_timeout" --script "$here/blk-crash-guest.sh" \
	--append "console=ttyS0 panic=-1 quiet viod.blocks=$blocks" -- \
	-chardev "socket,id=c0,path=$sock,reconnect-ms=500" \
	-device vhost-user-blk-pci,chardev=c0 2>"$tmp/run-guest.err"
	echo "RUN-GUEST-STATUS $?")
rgs=$(sed -n 's/^RUN-GUEST-STATUS //p' "$tmp/console")
cat "$tmp/run-guest.err" >&2
echo "# guest run: $((SECONDS - t0)) s; ${done_line:-no CRASH-DONE line}"

check "viod was killed $kills times under the writing guest ($killed)" [ "$killed" -eq "$kills" ]
check "guest finished its writes" [ -n "$done_line" ]
check "guest reported all $blocks blocks synced (${#synced[@]})" [ "${#synced[@]}" -eq "$blocks" ]
bad=""
for i in "${!synced[@]}"; do
	cmp -s <(dd if="$img" bs=65536 skip="$i" count=1 2>/dev/null) <(pattern "$i") ||
		bad+=" $i"
done
check "every block the guest synced holds its pattern in the image${bad:+ (not:$bad)}" [ -z "$bad" ]
check "guest test passed and QEMU exited cleanly (run-guest status ${rgs:-unknown})" [ "${rgs:-1}" = 0 ]
if [ -n "$pid" ]; then
	w=$(key "$gen" requests/write) e=$(key "$gen" errors)
	check "viod#$gen served the guest's writes after the last reconnect (requests/write $w)" [ "$w" -gt 0 ]
	check "viod#$gen saw no request errors (errors $e)" [ "$e" = 0 ]
	kill -TERM "$pid"
	wait "$pid"
	st=$?
	pid=""
	check "viod#$gen exits 0 on SIGTERM (status $st)" [ "$st" -eq 0 ]
else
	not_ok "the last viod was running at the end"
fi
echo "1..$n"
[ "$fails" -eq 0 ]
