#!/usr/bin/env bash
# Interop: the viomb(4) reference driver (vioguest balloon) against viod's
# balloon, driven by the host operator's tools. balloonctl inflates to a
# target and back, three cycles; the test checks what each side says: the
# driver's hw.viomb.actual, viod's store (inflated, host-freed, errors,
# the guest's statistics, XenStore's memory/target and memory/current),
# the guest memory still resident on the host, refusals of impossible
# targets, that a store watcher sees every `actual` the driver writes, and
# that an rng served by the same daemon keeps serving.
# A second, short guest negotiates no features at all (no MUST_TELL_HOST:
# deflated pages are reused before the device has acked them) and shows
# inflation itself giving the touched pages back to the host.
# Usage: viomb-viod.sh VIOD VIOGUEST BALLOONCTL VIOD-STORE. TAP on stdout.
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: $0 VIOD VIOGUEST BALLOONCTL VIOD-STORE" >&2; exit 2; }
viod=$1 vioguest=$2 bctl=$3 vstore=$4

MiB=$((1024 * 1024))
mem=$((128 * MiB))          # vioguest --memory 128M
big=8192                    # pages: 32 MiB

n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# keys_are KEY VALUE [KEY VALUE]...: each key of b0 reads its value now.
keys_are() {
	while [ $# -ge 2 ]; do
		[ "$(key "$1")" = "$2" ] || return 1
		shift 2
	done
}
# wait_key_ge KEY MIN [SECONDS]: until the key reads a number >= MIN.
wait_key_ge() {
	local i v
	for i in $(seq $((${3:-10} * 20))); do
		v=$(key "$1")
		[ "$v" -ge "$2" ] && return 0
		[ -z "$gpid" ] || guest_alive || break
		sleep 0.05
	done
	[ "$(key "$1")" -ge "$2" ]
}
in_range() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; } # V LO HI
diag() { sed 's/^/# /' "$@" 2>/dev/null; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-viomb.XXXXXX")
ctl=$tmp/control
vpid="" gpid=""
cleanup() {
	[ -n "$gpid" ] && kill "$gpid" 2>/dev/null && wait "$gpid" 2>/dev/null
	[ -n "$vpid" ] && kill "$vpid" 2>/dev/null && wait "$vpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

key() { "$vstore" --socket "$ctl" read "/devices/b0/$1" 2>/dev/null || echo -1; }
# Whether the balloon guest runs (a zombie does not): waits stop early
# when it died, so a crash costs seconds, not the test's timeout.
guest_alive() {
	[ -n "$gpid" ] && [ -r "/proc/$gpid/stat" ] &&
		[ "$(cut -d' ' -f3 "/proc/$gpid/stat")" != Z ]
}
# wait_key KEY VALUE [SECONDS]: until the key reads VALUE (default 10 s).
wait_key() {
	local i
	for i in $(seq $((${3:-10} * 20))); do
		[ "$(key "$1")" = "$2" ] && return 0
		[ -z "$gpid" ] || guest_alive || break
		sleep 0.05
	done
	[ "$(key "$1")" = "$2" ]
}
# The driver's last hw.viomb.actual (or npages) line, -1 if none.
viomb_last() {
	local v
	v=$(sed -n "s/^hw\.viomb\.$1 = \([0-9]*\)\$/\1/p" "$tmp/guest$gen.out" | tail -n 1)
	echo "${v:--1}"
}
wait_viomb() { # NAME VALUE: within 10 s
	local i
	for i in $(seq 200); do
		[ "$(viomb_last "$1")" = "$2" ] && return 0
		guest_alive || break
		sleep 0.05
	done
	[ "$(viomb_last "$1")" = "$2" ]
}
# Guest memory the host still backs, as the driver last reported it (KiB).
resident_kib() {
	local v
	v=$(sed -n 's/^vioguest: guest memory resident on the host: \([0-9]*\) KiB$/\1/p' \
		"$tmp/guest$gen.err" | tail -n 1)
	echo "${v:--1}"
}
rng_ok() {
	local hex
	hex=$("$vioguest" --socket "$tmp/r0.sock" rng --bytes 16 --hex 2>>"$tmp/rng.err") &&
		[[ $hex =~ ^[0-9a-f]{32}$ ]]
}
# bset ARGS...: balloonctl set b0 ARGS --wait; its status in $rc, output in bset.log.
bset() {
	"$bctl" --socket "$ctl" set b0 "$@" --wait --timeout 60 >"$tmp/bset.log" 2>&1
	rc=$?
	[ "$rc" -eq 0 ] || diag "$tmp/bset.log"
}
# start_guest FEATURES: a vioguest balloon that touched all its pool pages.
gen=0
start_guest() {
	gen=$((gen + 1))
	"$vioguest" --socket "$tmp/b0.sock" --memory 128M --regions 2 balloon --follow \
		--touch --features "$1" -v >"$tmp/guest$gen.out" 2>"$tmp/guest$gen.err" &
	gpid=$!
	wait_key state connected && wait_viomb actual 0
}
stop_guest() {
	local st
	kill -TERM "$gpid"; wait "$gpid"; st=$?
	gpid=""
	[ "$st" -eq 0 ] || diag "$tmp/guest$gen.err"
	return "$st"
}
# inflate_to PAGES WHAT: balloonctl set PAGES --wait, then both sides agree.
inflate_to() {
	bset "$1"
	check "$2: balloonctl set $1 --wait exits 0" [ "$rc" -eq 0 ]
	check "$2: hw.viomb.actual = $1" wait_viomb actual "$1"
	check "$2: inflated == $1" wait_key inflated "$1"
	check "$2: actual == $1" wait_key actual "$1"
}

"$viod" --control "$ctl" \
	--device "balloon,id=b0,socket=$tmp/b0.sock,stats-interval=1" \
	--device "rng,id=r0,socket=$tmp/r0.sock" 2>"$tmp/viod.log" &
vpid=$!
for _ in $(seq 200); do
	[ -S "$tmp/b0.sock" ] && [ -S "$tmp/r0.sock" ] && [ -S "$ctl" ] && break
	sleep 0.05
done
if ! test -S "$tmp/b0.sock" -a -S "$tmp/r0.sock" -a -S "$ctl"; then
	echo "Bail out! viod did not create b0, r0 and the control socket within 10 s"
	diag "$tmp/viod.log"
	exit 1
fi
ok "viod serves b0, r0 and the control socket"
check "r0 serves before any balloon guest" rng_ok

# ---- MUST_TELL_HOST, statistics and free page reporting ----
check "viomb attaches (must-tell-host,stats,reporting)" \
	start_guest must-tell-host,stats,reporting
f=$(key features)
check "MUST_TELL_HOST, STATS_VQ and REPORTING acked, DEFLATE_ON_OOM not ($f)" \
	[ $((f & 0x27)) -eq $((0x23)) ]
check "guest-memory is the driver's 128 MiB" [ "$(key guest-memory)" = "$mem" ]
check "stats/total-memory equals the guest's memory" wait_key stats/total-memory "$mem" 10
u0=$(key stats/updates)
check "statistics refresh (stats-interval=1): two more updates within 10 s" \
	wait_key_ge stats/updates $((u0 + 2)) 10
# Idle, the driver reports its whole pool free: viod punches all of it.
pool=$(sed -n 's/.*; pool \([0-9]*\) pages;.*/\1/p' "$tmp/guest$gen.err")
check "free page reporting gives the whole pool back ($pool pages)" \
	wait_key host-freed-reported $((${pool:-0} * 4096)) 10
check "XenStore memory/target and memory/current: all 128 MiB in KiB" \
	keys_are memory/target $((mem / 1024)) memory/current $((mem / 1024))

inflate_to $big "inflate to 32 MiB"
check "inflate to 32 MiB: hw.viomb.npages = $big" [ "$(viomb_last npages)" = $big ]
check "inflate to 32 MiB: errors == 0" [ "$(key errors)" = 0 ]
hf=$(key host-freed)
check "inflate to 32 MiB: host-freed ($hf) covers the balloon" \
	[ "$hf" -ge $((32 * MiB * 95 / 100)) ]
# The balloon's pages were reported free already: punching them again
# frees nothing, and viod must not count those bytes twice.
check "inflate to 32 MiB: no bytes counted twice (host-freed == host-freed-reported)" \
	[ "$hf" = "$(key host-freed-reported)" ]
r=$(resident_kib)
check "inflate to 32 MiB: guest memory resident on the host ($r KiB) <= 96 MiB" \
	in_range "$r" 0 $((96 * 1024))
check "inflate to 32 MiB: memory/target and memory/current are 96 MiB in KiB" \
	keys_are memory/target $((96 * 1024)) memory/current $((96 * 1024))
check "r0 serves with the balloon inflated" rng_ok

inflate_to 2048 "deflate to 8 MiB"
inflate_to 0 "deflate to 0"
check "deflate to 0: errors == 0" [ "$(key errors)" = 0 ]
for c in 2 3; do
	inflate_to $big "cycle $c: inflate"
	inflate_to 0 "cycle $c: deflate"
done
check "cycles end where they started: actual 0, inflated 0, errors 0" \
	keys_are actual 0 inflated 0 errors 0
check "cycles end where they started: hw.viomb.actual = 0" [ "$(viomb_last actual)" = 0 ]
check "r0 serves after three cycles" rng_ok

# ---- a watcher sees every actual the driver writes, in order ----
# until_in FILE PATTERN: until grep finds PATTERN in FILE, 10 s at most.
until_in() {
	for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
	grep -q "$2" "$1" 2>/dev/null
}
"$vstore" --socket "$ctl" watch /devices/b0/actual >"$tmp/watch.out" 2>&1 &
wpid=$!
# The watch is in place once it printed the current value.
check "watcher started (printed actual 0)" until_in "$tmp/watch.out" "actual 0$"
mark=$(wc -l <"$tmp/guest$gen.out")
inflate_to 2048 "watched inflate to 8 MiB"
# The watcher prints in its own time: wait for the last value.
check "watched inflate: the watch printed actual 2048" until_in "$tmp/watch.out" "actual 2048$"
kill "$wpid"
wait "$wpid"
wrote=$(tail -n +$((mark + 1)) "$tmp/guest$gen.out" |
	sed -n 's/^hw\.viomb\.actual = \([0-9]*\)$/\1/p' | tr '\n' ' ')
seen=$(sed -n 's|^/devices/b0/actual \([0-9]*\)$|\1|p' "$tmp/watch.out" | tail -n +2 |
	tr '\n' ' ')
check "watched inflate: the driver wrote actual in steps ($wrote)" \
	[ "$(echo $wrote | wc -w)" -ge 8 ]
check "watched inflate: the watch saw each value the driver wrote ($seen)" \
	[ "$seen" = "$wrote" ]
inflate_to 0 "watched: deflate to 0"

# ---- sizes as the guest's memory, and XenStore's names ----
keep=$((100 * MiB))
want=$(((mem - keep) / 4096))
bset --guest-memory 100M
check "--guest-memory 100M --wait exits 0" [ "$rc" -eq 0 ]
check "--guest-memory 100M: target == (guest memory - 100 MiB) / 4096 = $want" \
	[ "$(key target)" = "$want" ]
check "--guest-memory 100M: inflated == $want" wait_key inflated "$want"
check "--guest-memory 100M: hw.viomb.actual = $want" wait_viomb actual "$want"
check "--guest-memory 100M: memory/target == 102400 KiB" \
	[ "$(key memory/target)" = $((keep / 1024)) ]
check "--guest-memory 100M: memory/current == 102400 KiB" \
	wait_key memory/current $((keep / 1024))

"$vstore" --socket "$ctl" write /devices/b0/memory/target $((96 * 1024)) 2>"$tmp/w.err"
check "viod-store write memory/target 98304 (KiB) exits 0" [ $? -eq 0 ]
check "memory/target 98304 KiB moves target to $big pages" wait_key target $big 5
check "memory/target 98304 KiB: the driver follows (actual $big)" wait_key actual $big 30
check "memory/target 98304 KiB: inflated == $big" wait_key inflated $big
check "memory/target 98304 KiB: memory/current == 98304" wait_key memory/current $((96 * 1024))
"$vstore" --socket "$ctl" write /devices/b0/memory/target $((mem / 1024)) 2>>"$tmp/w.err"
check "viod-store write memory/target 131072 (all memory) exits 0" [ $? -eq 0 ]
check "memory/target 131072 KiB: target 0, actual 0" wait_key actual 0 30
check "memory/target 131072 KiB: inflated 0, target 0" keys_are inflated 0 target 0

# ---- impossible targets are refused, and change nothing ----
"$bctl" --socket "$ctl" set b0 40000 >"$tmp/over.out" 2>"$tmp/over.err"
st=$?
check "a target beyond guest memory: balloonctl exits 1" [ "$st" -eq 1 ]
check "a target beyond guest memory: the message says why" \
	grep -q "exceeds the guest's 32768 pages of memory" "$tmp/over.err"
"$bctl" --socket "$ctl" set b0 --guest-memory 200M --wait >"$tmp/over2.out" 2>"$tmp/over2.err"
st=$?
check "--guest-memory 200M (more than the guest has): exit 1" [ "$st" -eq 1 ]
check "--guest-memory 200M: the message says why" \
	grep -q "more than the guest's 128" "$tmp/over2.err"
"$vstore" --socket "$ctl" write /devices/b0/memory/target 200000 2>"$tmp/over3.err"
check "memory/target beyond guest memory: viod-store write exits 1" [ $? -eq 1 ]
check "refusals leave target and actual at 0" keys_are target 0 actual 0
check "refusals leave the guest alone: hw.viomb.npages = 0" [ "$(viomb_last npages)" = 0 ]
for f in over over2 over3; do [ -s "$tmp/$f.err" ] && diag "$tmp/$f.err"; done

check "SIGTERM: vioguest exits 0" stop_guest
check "b0 waits for a front-end again" wait_key state waiting

# ---- no MUST_TELL_HOST (nor anything else): the other order ----
check "viomb attaches (features none)" start_guest none
f=$(key features)
check "no balloon feature acked ($f)" [ $((f & 0x27)) -eq 0 ]
hf0=$(key host-freed)
inflate_to $big "no MUST_TELL_HOST: inflate to 32 MiB"
hf1=$(key host-freed)
check "no MUST_TELL_HOST: inflating touched pages frees 32 MiB on the host ($((hf1 - hf0)) bytes)" \
	in_range $((hf1 - hf0)) $((32 * MiB * 95 / 100)) $((32 * MiB))
r=$(resident_kib)
check "no MUST_TELL_HOST: guest memory resident on the host ($r KiB) <= 96 MiB" \
	in_range "$r" 0 $((96 * 1024))
inflate_to 0 "no MUST_TELL_HOST: deflate to 0"
check "no MUST_TELL_HOST: errors == 0" [ "$(key errors)" = 0 ]
check "no MUST_TELL_HOST: no statistics queue, no reporting" \
	grep -q 'queues inflate 0 deflate 1 stats -1 reporting -1' "$tmp/guest$gen.err"
check "SIGTERM: vioguest (features none) exits 0" stop_guest

check "r0 still serves at the end" rng_ok
check "viod still running" kill -0 "$vpid"
kill -TERM "$vpid"; wait "$vpid"; st=$?
vpid=""
check "viod exits 0 on SIGTERM" [ "$st" -eq 0 ]
if [ "$fails" -gt 0 ]; then
	for i in $(seq "$gen"); do diag "$tmp/guest$i.err" | tail -n 5; done
	diag "$tmp/viod.log"
fi
[ -s "$tmp/rng.err" ] && diag "$tmp/rng.err"
echo "1..$n"
[ "$fails" -eq 0 ]
