#!/usr/bin/env bash
# Interop: the vioif reference driver (vioguest net) against DPDK
# testpmd's vhost PMD, a virtio-net back-end nobody here wrote.
#   rxonly:  vioif sends test frames on 1 and 2 queue pairs; testpmd
#            counts exactly that many (and bytes), on the right queues.
#   macswap: testpmd bounces frames back; vioguest net pingpong checks
#            every one intact, with and without MRG_RXBUF, with rx
#            buffers small enough that frames span several, on 1 and 2
#            queue pairs.
#   io:      two vhost ports, vioif on each: pingpong on one, net echo
#            on the other, testpmd forwarding between them.
#   txonly:  testpmd floods vioif, which receives (frames not of our
#            format: counted, and refused by the test-frame check).
#
# testpmd's counters: with --stats-period 1 it prints its NIC statistics
# every second (polled here until they reach what was sent); on SIGINT it
# prints its forward statistics, per stream and accumulated (the exact
# counts asserted here).
#
# Usage: tests/interop/vioif-dpdk.sh VIOGUEST_BINARY
# Output: TAP. Skips (1..0) when dpdk-testpmd is not installed.
set -uo pipefail

vioguest=${1:?usage: vioif-dpdk.sh VIOGUEST_BINARY}
TESTPMD=${TESTPMD:-dpdk-testpmd}

if ! command -v "$TESTPMD" >/dev/null 2>&1; then
	echo "1..0 # SKIP dpdk-testpmd not installed (Debian package dpdk)"
	exit 0
fi
if [ ! -x "$vioguest" ]; then
	echo "Bail out! vioguest binary not found: $vioguest"
	exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/viod-vioif-dpdk.XXXXXX") || exit 1
prefix=viod-vioif-$$
# EAL's runtime directory of our --file-prefix (emptied by testpmd on
# exit with --no-shconf --no-telemetry, but not removed).
if [ "$(id -u)" -eq 0 ]; then
	rtdir=/var/run/dpdk/$prefix
else
	rtdir=${XDG_RUNTIME_DIR:-/tmp}/dpdk/$prefix
fi
tp_pid=""
echo_pid=""
run=0

# Stops testpmd (SIGINT: it prints its forward statistics and exits),
# killing it if it has not exited within 15 s.
tp_stop() {
	if [ -n "$tp_pid" ]; then
		kill -INT "$tp_pid" 2>/dev/null
		for _ in $(seq 150); do
			kill -0 "$tp_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$tp_pid" 2>/dev/null
		wait "$tp_pid" 2>/dev/null
	fi
	tp_pid=""
}
cleanup() {
	if [ -n "$echo_pid" ]; then
		kill "$echo_pid" 2>/dev/null
		wait "$echo_pid" 2>/dev/null
	fi
	tp_stop
	rmdir "$rtdir" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# tp_start MODE QUEUES PORTS: testpmd in forward mode MODE, PORTS (1 or
# 2) vhost ports of QUEUES queue pairs on $dir/vhN-P.sock; waits (20 s at
# most) for every socket. Sets tp_log, sock0 and sock1.
tp_start() {
	local mode=$1 queues=$2 ports=$3 vdevs=() p
	run=$((run + 1))
	tp_log=$dir/testpmd$run.log
	for ((p = 0; p < ports; p++)); do
		rm -f "$dir/vh$run-$p.sock"
		vdevs+=(--vdev "net_vhost$p,iface=$dir/vh$run-$p.sock,queues=$queues")
	done
	sock0=$dir/vh$run-0.sock
	sock1=$dir/vh$run-1.sock
	# Two lcores (main + one forwarding), no hugepages, no shared
	# config files; one queue per vhost queue pair; stats every second.
	"$TESTPMD" -l 0,1 --no-pci --no-huge -m 1024 --file-prefix="$prefix" \
		--no-shconf --no-telemetry "${vdevs[@]}" -- --no-mlockall \
		--total-num-mbufs=16384 --forward-mode="$mode" --auto-start \
		--stats-period 1 --rxq="$queues" --txq="$queues" \
		</dev/null >"$tp_log" 2>&1 &
	tp_pid=$!
	for _ in $(seq 200); do
		[ -S "$dir/vh$run-$((ports - 1)).sock" ] && return 0
		kill -0 "$tp_pid" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$tp_log" | sed 's/^/# /'
	return 1
}

# The last NIC statistics testpmd printed for port 0: tp_nic RX-packets,
# tp_nic RX-bytes, tp_nic TX-packets.
tp_nic() {
	tr -d '\033' <"$tp_log" |
		sed -n "s/.*$1: *\([0-9][0-9]*\).*/\1/p" | tail -1
}
# After tp_stop: the accumulated forward statistics (RX-packets,
# TX-packets, TX-dropped).
tp_total() {
	sed -n '/Accumulated forward statistics/,$p' "$tp_log" |
		sed -n "s/.*$1: *\([0-9][0-9]*\).*/\1/p" | head -1
}
# After tp_stop: RX-packets of the stream of port $1, queue $2.
tp_stream_rx() {
	grep -a -A1 "RX Port= $1/Queue= $2 " "$tp_log" |
		sed -n 's/.*RX-packets: *\([0-9][0-9]*\).*/\1/p' | head -1
}

# tp_wait_nic KEY N: polls testpmd's NIC statistics until KEY reaches N
# (20 s at most; a statistic is printed every second).
tp_wait_nic() {
	local v
	for _ in $(seq 200); do
		v=$(tp_nic "$1")
		[ -n "$v" ] && [ "$v" -ge "$2" ] && return 0
		sleep 0.1
	done
	echo "# testpmd $1: ${v:-none}, waited for $2"
	return 1
}

# vg NAME ARGS...: vioguest -v ARGS; stdout in $dir/out, stderr in
# $dir/err; ok when it exits 0.
vg() {
	local name=$1
	shift
	"$vioguest" -v --timeout-ms 5000 "$@" >"$dir/out" 2>"$dir/err"
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "$name"
	else
		not_ok "$name (exit $rc)"
		sed 's/^/# /' "$dir/out" "$dir/err"
	fi
}
field() { tr ' ' '\n' <"$dir/out" | sed -n "s/^$1=//p" | head -1; }
is_eq() { [ "$1" = "$2" ] || { echo "#   got '$1', want '$2'"; return 1; }; }
# From the verbose output: frames merged, rx frames of pair P.
merged() { sed -n 's/.* \([0-9][0-9]*\) merged,.*/\1/p' "$dir/err" | tail -1; }
pair_rx() { sed -n "s/.*net: pair $1: tx [0-9]* frames, rx \([0-9]*\) frames.*/\1/p" "$dir/err" | tail -1; }
positive() { [ -n "$1" ] && [ "$1" -gt 0 ]; }

# ---- rxonly: testpmd counts what vioif sends --------------------------
if tp_start rxonly 2 1; then
	ok "testpmd (rxonly, 2 queue pairs) listens"

	vg "net info" --socket "$sock0" net info
	check "info: MRG_RXBUF negotiated, 12-byte header, 1 queue pair" \
		grep -qx 'mrg_rxbuf=1' "$dir/out"
	check "info: header and queue pairs" \
		is_eq "$(sed -n 's/^hdr_len=//p;s/^queue_pairs=/ /p' "$dir/out" | tr -d '\n')" "12 1"
	vg "net info --no-mrg-rxbuf --queues 2" --socket "$sock0" net info --no-mrg-rxbuf --queues 2
	check "info: MRG_RXBUF not negotiated, 2 queue pairs" \
		is_eq "$(sed -n 's/^mrg_rxbuf=//p;s/^queue_pairs=/ /p' "$dir/out" | tr -d '\n')" "0 2"

	vg "net send 2000 frames of 60..1514 bytes" --socket "$sock0" net send --count 2000
	check "send says sent=2000" is_eq "$(field sent)" 2000
	bytes=$(field bytes)
	check "testpmd received 2000 frames" tp_wait_nic RX-packets 2000
	check "testpmd received the bytes sent ($bytes)" is_eq "$(tp_nic RX-bytes)" "$bytes"

	vg "net send 2000 frames of 60 bytes on 2 queue pairs" --socket "$sock0" \
		net send --count 2000 --size 60 --queues 2
	check "testpmd received 4000 frames in all" tp_wait_nic RX-packets 4000
	tp_stop
	check "testpmd's forward statistics: exactly 4000 received" \
		is_eq "$(tp_total RX-packets)" 4000
	check "exactly 1000 of them on queue 1" is_eq "$(tp_stream_rx 0 1)" 1000
else
	not_ok "testpmd (rxonly, 2 queue pairs) listens"
fi
tp_stop

# ---- macswap: every frame comes back intact ---------------------------
if tp_start macswap 2 1; then
	ok "testpmd (macswap, 2 queue pairs) listens"
	total=0
	while IFS='|' read -r what args; do
		# shellcheck disable=SC2086
		vg "pingpong 3000 frames, $what" --socket "$sock0" net pingpong --count 3000 $args
		check "$what: all 3000 back intact" \
			is_eq "$(field sent) $(field received) $(field bad)" "3000 3000 0"
		total=$((total + 3000))
		case $args in
		*rx-buf-size*) check "$what: frames spanned several buffers ($(merged) merged)" \
			positive "$(merged)" ;;
		esac
		case $args in
		*"queues 2"*) check "$what: frames came back on both pairs ($(pair_rx 0), $(pair_rx 1))" \
			positive "$(pair_rx 1)" ;;
		esac
	done <<-'EOF'
	MRG_RXBUF, 1 pair|
	no MRG_RXBUF, 1 pair|--no-mrg-rxbuf
	MRG_RXBUF with 512-byte rx buffers, 1 pair|--rx-buf-size 512
	MRG_RXBUF, 2 pairs|--queues 2
	no MRG_RXBUF, 2 pairs|--queues 2 --no-mrg-rxbuf
	MRG_RXBUF with 256-byte rx buffers, 2 pairs|--queues 2 --rx-buf-size 256
	EOF
	tp_stop
	check "testpmd forwarded every frame ($total), dropped none" \
		is_eq "$(tp_total RX-packets) $(tp_total TX-packets) $(tp_total TX-dropped)" \
		"$total $total 0"
else
	not_ok "testpmd (macswap, 2 queue pairs) listens"
fi
tp_stop

# ---- io between two ports: pingpong on one, echo on the other ---------
if tp_start io 2 2; then
	ok "testpmd (io, two ports of 2 queue pairs) listens"
	"$vioguest" -v --socket "$sock1" net echo --queues 2 --count 3000 \
		--timeout-ms 20000 >"$dir/echo.out" 2>"$dir/echo.err" &
	echo_pid=$!
	attached=false
	for _ in $(seq 100); do
		grep -q "net: features" "$dir/echo.err" && { attached=true; break; }
		kill -0 "$echo_pid" 2>/dev/null || break
		sleep 0.1
	done
	check "net echo attached to port 1" $attached
	vg "pingpong 3000 frames through testpmd and net echo" --socket "$sock0" \
		net pingpong --count 3000 --queues 2
	check "all 3000 back intact" \
		is_eq "$(field sent) $(field received) $(field bad)" "3000 3000 0"
	wait "$echo_pid"
	rc=$?
	echo_pid=""
	check "net echo exits 0 after 3000 frames (exit $rc)" [ $rc -eq 0 ]
	check "net echo says echoed=3000" grep -q '^echoed=3000 ' "$dir/echo.out"
	tp_stop
	check "testpmd forwarded 6000 frames, dropped none" \
		is_eq "$(tp_total RX-packets) $(tp_total TX-packets) $(tp_total TX-dropped)" \
		"6000 6000 0"
else
	not_ok "testpmd (io, two ports of 2 queue pairs) listens"
fi
tp_stop

# ---- txonly: testpmd floods vioif -------------------------------------
if tp_start txonly 1 1; then
	ok "testpmd (txonly) listens"
	vg "recv --any 5000 frames" --socket "$sock0" net recv --any --count 5000 \
		--timeout-ms 10000
	check "received=5000" is_eq "$(field received)" 5000
	vg "recv --any 5000 frames without MRG_RXBUF" --socket "$sock0" \
		net recv --any --no-mrg-rxbuf --count 5000 --timeout-ms 10000
	check "received=5000" is_eq "$(field received)" 5000
	"$vioguest" --socket "$sock0" net recv --count 10 --timeout-ms 10000 \
		>"$dir/out" 2>"$dir/err"
	rc=$?
	check "recv refuses testpmd's frames as test frames (exit $rc)" \
		is_eq "$rc $(field received) $(field bad)" "1 10 10"
	check "testpmd sent at least 10010 frames" tp_wait_nic TX-packets 10010
else
	not_ok "testpmd (txonly) listens"
fi
tp_stop

echo "1..$n"
[ $fails -eq 0 ]
