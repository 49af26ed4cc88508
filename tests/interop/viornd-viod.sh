#!/usr/bin/env bash
# Interop: the reference front-end (vioguest/viornd) against viod, over the
# memory layouts and options a front-end may use, and viod's rate limit.
# Usage: viornd-viod.sh VIOD_BINARY VIOGUEST_BINARY. TAP on stdout.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: $0 VIOD VIOGUEST" >&2; exit 2; }
viod=$1 vioguest=$2
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
within() { [ "$1" -ge "$2" ] && [ "$1" -lt "$3" ]; } # N LOW HIGH: LOW <= N < HIGH

tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
"$viod" --control "$tmp/control" --device "rng,id=r0,socket=$tmp/r0.sock" \
	--device "rng,id=r1,socket=$tmp/r1.sock,max-bytes=8192,period=1000" \
	--device "rng,id=r2,socket=$tmp/r2.sock,poll-us=0" 2>"$tmp/viod.log" &
pid=$!
sockets() { [ -S "$tmp/r0.sock" ] && [ -S "$tmp/r1.sock" ] && [ -S "$tmp/r2.sock" ]; }
for _ in $(seq 100); do sockets && break; sleep 0.05; done
sockets || { echo "Bail out! viod did not create its sockets within 5 s"; cat "$tmp/viod.log"; exit 1; }

# hexbytes ARGS...: bytes of entropy read with vioguest ARGS, or 0.
hexbytes() {
	local hex
	hex=$("$vioguest" "$@" 2>>"$tmp/err" | tr -d ' \n') || { echo 0; return; }
	echo $((${#hex} / 2))
}

for args in "--regions 1" "--regions 4" "--regions 8" "--regions 8 --add-mem-reg" \
	"--no-event-idx" "--spin-us 0" "--memory 16M --regions 3"; do
	# shellcheck disable=SC2086
	got=$(hexbytes --socket "$tmp/r0.sock" $args rng --bytes 100000 --request-size 1000)
	check "viornd reads 100000 bytes with $args" [ "$got" -eq 100000 ]
done
got=$(hexbytes --socket "$tmp/r2.sock" rng --bytes 4096 --request-size 1)
check "one-byte requests with polling disabled" [ "$got" -eq 4096 ]

a=$("$vioguest" --socket "$tmp/r0.sock" rng --bytes 32 --hex)
b=$("$vioguest" --socket "$tmp/r0.sock" rng --bytes 32 --hex)
check "successive reads differ" [ "$a" != "$b" ]
"$vioguest" --socket "$tmp/r0.sock" rng --bytes 65536 --out "$tmp/ent"
z=$(gzip -c "$tmp/ent" | wc -c)
check "64 KiB of entropy does not compress ($z bytes gzipped)" [ "$z" -gt 65536 ]

# Rate limit, 8192 bytes per 1000 ms. r1's first 8192 bytes come; 24576
# bytes need at least two more periods after the first request, since
# each refill comes a period after the last. Both hold whether or not a
# period is fresh (a new connection resets the device, so it is), and
# need no sleep. How soon the bytes come is not asserted: an upper bound
# on wall time is up to the scheduler; the figures are printed.
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; } # monotonic, 10 ms steps
elapsed() { # ARGS...: milliseconds vioguest ARGS took, or -1 on failure
	local t0 t1
	t0=$(now_ms)
	"$vioguest" "$@" >/dev/null 2>>"$tmp/err" || { echo -1; return; }
	t1=$(now_ms)
	echo $((t1 - t0))
}
ms=$(elapsed --socket "$tmp/r1.sock" rng --bytes 8192 --request-size 1024 --hex)
check "rate limit: 8192 bytes, the budget of one period, come (${ms} ms)" [ "$ms" -ge 0 ]
ms=$(elapsed --socket "$tmp/r1.sock" rng --bytes 24576 --request-size 1024 --hex)
# 1990: /proc/uptime counts in 10 ms steps.
check "rate limit: 24576 bytes take two more periods (${ms} ms)" within "$ms" 1990 $((1 << 30))

info=$("$vioguest" --socket "$tmp/r0.sock" info 2>>"$tmp/err")
check "info: VERSION_1, EVENT_IDX and INDIRECT acked" \
	grep -q '^features_acked=0x0*170000000$' <<<"$info"
check "info: one queue" grep -q '^queues=1$' <<<"$info"

check "viod still running" kill -0 "$pid"
kill -TERM "$pid"; wait "$pid"; st=$?
check "viod exits 0 on SIGTERM" [ "$st" -eq 0 ]
[ -s "$tmp/err" ] && sed 's/^/# /' "$tmp/err"
echo "1..$n"
[ "$fails" -eq 0 ]
