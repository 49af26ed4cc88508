#!/usr/bin/env bash
# Interop: the vioif reference driver (vioguest net) on viod's net devices
# and their switch: frames cross from port to port intact, with and
# without MRG_RXBUF and on two queue pairs; the switch learns where an
# address lives and stops flooding to the others; echo round trips; the
# store's counters add up.
# Usage: vioif-viod.sh VIOD VIOGUEST VIOD_STORE. TAP on stdout.
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 VIOD VIOGUEST VIOD_STORE" >&2; exit 2; }
viod=$1 vioguest=$2 store=$3
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	kill "$pid" 2>/dev/null; wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
"$viod" --control "$tmp/control" \
	--device "net,id=a,socket=$tmp/a.sock,backend=switch:s0,mac=52:54:00:00:00:0a" \
	--device "net,id=b,socket=$tmp/b.sock,backend=switch:s0,mac=52:54:00:00:00:0b" \
	--device "net,id=c,socket=$tmp/c.sock,backend=switch:s0,mac=52:54:00:00:00:0c" \
	--device "net,id=d,socket=$tmp/d.sock,backend=switch:s1,queue-pairs=2" \
	--device "net,id=e,socket=$tmp/e.sock,backend=switch:s1,queue-pairs=2" \
	2>"$tmp/viod.log" &
pid=$!
sockets() { for s in a b c d e; do [ -S "$tmp/$s.sock" ] || return 1; done; }
for _ in $(seq 100); do sockets && break; sleep 0.05; done
sockets || { echo "Bail out! viod did not create its sockets within 5 s"; cat "$tmp/viod.log"; exit 1; }

rd() { "$store" --socket "$tmp/control" read "/devices/$1/$2" 2>/dev/null || echo -1; }
# up ID: the device's front-end negotiated features (its port takes frames).
up() {
	for _ in $(seq 200); do
		local f
		f=$(rd "$1" features)
		[ "$f" != -1 ] && [ "$((f))" -ne 0 ] && return 0
		sleep 0.05
	done
	return 1
}
# recv_bg ID OUT ARGS...: a receiver in the background, ready when up.
recv_bg() {
	local id=$1 out=$2
	shift 2
	"$vioguest" --socket "$tmp/$id.sock" net "$@" >"$out" 2>&1 &
	pids+=($!)
	up "$id"
}
# eventually CMD...: CMD succeeds within 10 s.
eventually() {
	for _ in $(seq 200); do "$@" && return 0; sleep 0.05; done
	return 1
}
macs_gone() { [ "$(rd "$1" state)" = waiting ] && [ "$(rd "$1" switch/macs)" -eq 0 ]; }
field() { sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" "$2" | head -n1; }

# Each burst stays within what a port's queue holds for one sender (its
# share of 512 cells with three ports: 256), so no frame may be dropped
# however slowly a receiver runs.

# 1. Broadcast from a reaches b (c also listens) whole, every size.
recv_bg b "$tmp/b1" recv --count 200 --timeout-ms 20000 && recv_bg c "$tmp/c1" recv --count 200 --timeout-ms 20000
check "ports b and c are up" up b
"$vioguest" --socket "$tmp/a.sock" net send --count 200 --dst ff:ff:ff:ff:ff:ff --size-min 60 --size-max 1514 >"$tmp/a1" 2>&1
wait "${pids[@]}"; pids=()
check "a sent 200 frames" grep -q '^sent=200 ' "$tmp/a1"
check "b received all 200 broadcast frames intact" grep -q '^received=200 bad=0 ' "$tmp/b1"
check "c received all 200 broadcast frames intact" grep -q '^received=200 bad=0 ' "$tmp/c1"
check "store: a tx/packets = 200" [ "$(rd a tx/packets)" -eq 200 ]
check "store: b rx/packets = 200 = queues/0/packets" \
	[ "$(rd b rx/packets)" -eq 200 ] && [ "$(rd b queues/0/packets)" -eq 200 ]
check "store: no drops at a" [ "$(rd a drops/dst-full)" -eq 0 ] && [ "$(rd a drops/bad-header)" -eq 0 ]
check "store: tx/bytes of a = rx/bytes of b = what a sent" \
	[ "$(rd a tx/bytes)" -eq "$(field bytes "$tmp/a1")" ] && [ "$(rd b rx/bytes)" -eq "$(rd a tx/bytes)" ]

# 2. Without MRG_RXBUF, full-size frames in single buffers.
recv_bg b "$tmp/b2" recv --no-mrg-rxbuf --count 200 --timeout-ms 20000
"$vioguest" --socket "$tmp/a.sock" net send --count 200 --dst ff:ff:ff:ff:ff:ff --size 1514 >"$tmp/a2" 2>&1
wait "${pids[@]}"; pids=()
check "without MRG_RXBUF b receives 200 frames of 1514 bytes intact" grep -q '^received=200 bad=0 bytes=302800' "$tmp/b2"
# Small buffers with MRG_RXBUF: frames span several.
recv_bg b "$tmp/b3" recv --rx-buf-size 256 --count 200 --timeout-ms 20000
"$vioguest" --socket "$tmp/a.sock" net send --count 200 --dst ff:ff:ff:ff:ff:ff --size 1514 >"$tmp/a3" 2>&1
wait "${pids[@]}"; pids=()
check "with 256-byte buffers b receives 200 merged frames intact" grep -q '^received=200 bad=0 ' "$tmp/b3"

# 3. Learning: a and b exchange 200 round trips while c listens. a's
# first frame for b is flooded (b is unknown), then b's answer teaches the
# switch where b lives and a's frames go to b alone: c gets one frame.
c0=$(rd c rx/packets)
recv_bg c "$tmp/c4" recv --any --count 1000 --timeout-ms 60000
recv_bg b "$tmp/b4" echo --count 200 --timeout-ms 20000
"$vioguest" --socket "$tmp/a.sock" net pingpong --count 200 --window 1 \
	--dst 52:54:00:00:00:0b --timeout-ms 20000 >"$tmp/a4" 2>&1
check "200 round trips a <-> b intact" grep -q '^sent=200 received=200 bad=0 ' "$tmp/a4"
c1=$(rd c rx/packets)
check "learning: c received only the first, flooded, frame ($((c1 - c0)))" [ $((c1 - c0)) -eq 1 ]
kill "${pids[0]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; pids=()
check "a port forgets its addresses when its front-end goes" eventually macs_gone a

# 4. Round trips: b echoes what a sends it.
recv_bg b "$tmp/b5" echo --count 1000 --timeout-ms 20000
"$vioguest" --socket "$tmp/a.sock" net pingpong --count 1000 --dst 52:54:00:00:00:0b \
	--timeout-ms 20000 >"$tmp/a5" 2>&1
wait "${pids[@]}"; pids=()
check "pingpong a <-> b: 1000 frames back intact" grep -q '^sent=1000 received=1000 bad=0 ' "$tmp/a5"
check "b echoed 1000" grep -q '^echoed=1000 ' "$tmp/b5"

# 5. Two queue pairs on another switch.
recv_bg e "$tmp/e1" recv --queues 2 --count 200 --timeout-ms 20000
"$vioguest" --socket "$tmp/d.sock" net send --queues 2 --count 200 --dst ff:ff:ff:ff:ff:ff >"$tmp/d1" 2>&1
wait "${pids[@]}"; pids=()
check "2 queue pairs: e receives 200 intact" grep -q '^received=200 bad=0 ' "$tmp/e1"
check "2 queue pairs: d transmitted on both pairs" \
	[ "$(rd d queues/1/packets)" -gt 0 ] && [ "$(rd d queues/3/packets)" -gt 0 ]
check "switches are separate: nothing from s1 reached c" [ "$(rd c rx/packets)" -eq "$c1" ]

check "viod still running" kill -0 "$pid"
kill -TERM "$pid"; wait "$pid"; st=$?
check "viod exits 0 on SIGTERM" [ "$st" -eq 0 ]
[ "$fails" -gt 0 ] && sed 's/^/# /' "$tmp/viod.log"
for f in "$tmp"/[a-e][0-9]; do [ "$fails" -gt 0 ] && sed "s|^|# $(basename "$f"): |" "$f"; done
echo "1..$n"
[ "$fails" -eq 0 ]
