#!/usr/bin/env bash
# Interop: DPDK testpmd's virtio-user front-end (a vhost-user client
# nobody here wrote) against viod's net devices on the built-in switch:
#  (a) txonly into port a, rxonly on port b (switch s0): testpmd-tx's
#      count is what viod took from a; a's tx/packets = b's rx/packets +
#      the drops on the way; testpmd-rx counted exactly what viod says it
#      delivered to b;
#  (b) macswap both ways (switch s1), one testpmd started with
#      start tx_first: the frames circulate, both see RX and TX grow, the
#      switch learns both sides' addresses;
#  (c) (a) again with 2 queue pairs on 2 workers (switch s2): both
#      transmit queues carry frames, the same accounting holds.
# Each testpmd's forwarding lcore runs on its own CPU (0 or 1). Waits
# have deadlines; counts are compared once the rings are drained
# (testpmd's "stop" keeps the port up, so viod drains the ring behind it).
#
# Usage: tests/interop/testpmd-viod.sh VIOD_BINARY VIOD_STORE_BINARY
# Output: TAP. Skips (1..0) when dpdk-testpmd is not installed.
set -uo pipefail

viod=${1:?usage: testpmd-viod.sh VIOD VIOD_STORE}
store=${2:?usage: testpmd-viod.sh VIOD VIOD_STORE}
here=$(cd "$(dirname "$0")" && pwd)

. "$here/../tap.sh"
. "$here/testpmd-lib.sh"
if ! command -v "$TESTPMD" >/dev/null 2>&1; then
	echo "1..0 # SKIP $TESTPMD not installed (Debian package dpdk)"
	exit 0
fi
for b in "$viod" "$store"; do
	[ -x "$b" ] || { echo "Bail out! not executable: $b"; exit 1; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/viod-testpmd.XXXXXX") || exit 1
viod_pid=""
trap 'pmd_cleanup; reap "$viod_pid"; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM HUP PIPE

logs() {
	for f in "$dir"/*.log; do
		echo "# --- ${f##*/}"
		tail -n 30 "$f" | sed 's/^/# /'
	done
}
bail() { echo "Bail out! $*"; logs; exit 1; }

ctl=$dir/ctl
# st DEV KEY: one counter; 0 if it cannot be read.
st() { "$store" -s "$ctl" read "/devices/$1/$2" 2>/dev/null || echo 0; }
# drops DEV REASON...: the sum of those drop counters.
drops() {
	local d=$1 sum=0 r

	shift
	for r in "$@"; do sum=$((sum + $(st "$d" "drops/$r"))); done
	echo "$sum"
}
all_drops() { drops "$1" bad-header runt oversize no-buffers dst-full link-down gso backend; }
tx_refused() { drops "$1" bad-header runt oversize; }
driver_ok() { [ $(($(st "$1" status) & 4)) -ne 0 ]; }
at_least() { [ "$(st "$1" "$2")" -ge "$3" ]; }
equals() { [ "$("${@:2}")" = "$1" ]; } # equals VALUE CMD...: CMD prints VALUE
# took DEV: the frames viod took from DEV's transmit queues.
took() { echo $(($(st "$1" tx/packets) + $(tx_refused "$1"))); }

spec() { echo "net,id=$1,socket=$dir/$1.sock,backend=switch:$2${3:+,$3}"; }
"$viod" --control "$ctl" \
	--device "$(spec a s0)" --device "$(spec b s0)" \
	--device "$(spec e s1)" --device "$(spec f s1)" \
	--device "$(spec c s2 queue-pairs=2,workers=2)" --device "$(spec d s2 queue-pairs=2,workers=2)" \
	>"$dir/viod.log" 2>&1 &
viod_pid=$!
sockets() { for d in a b c d e f; do [ -S "$dir/$d.sock" ] || return 1; done; [ -S "$ctl" ]; }
within 10 sockets || bail "viod did not create its sockets within 10 s"

vdev() { echo "net_virtio_user0,path=$dir/$1.sock,queues=${2:-1}"; }

# start NAME FWD_CPU DEV QUEUES MODE [ARG...]: a testpmd on DEV's socket,
# bailing out if it does not come up or connect.
start() {
	local name=$1 cpu=$2 dev=$3 q=$4 mode=$5

	shift 5
	pmd_start "$name" "$cpu" "$(vdev "$dev" "$q")" --rxq="$q" --txq="$q" \
		--forward-mode="$mode" "$@" || bail "testpmd $name did not start"
	within 10 driver_ok "$dev" || bail "testpmd $name: $dev not DRIVER_OK within 10 s"
}

# accounting TX_PMD RX_PMD SRC DST LABEL: stops TX_PMD, then checks what
# it sent against SRC's counters, SRC's against DST's, and what RX_PMD
# received against DST's, each once the numbers have had 10 s to agree.
accounting() {
	local tp=$1 rp=$2 a=$3 b=$4 l=$5 sent got atx brx lost

	read -r _ sent _ _ < <(pmd_stop "$tp") || sent=-1
	within 10 equals "$sent" took "$a"
	atx=$(st "$a" tx/packets)
	check "$l: testpmd-$tp sent $sent frames, viod took them from $a ($atx + $(tx_refused "$a") refused)" \
		eval '[ "$sent" -gt 0 ] && [ "$(took "$a")" -eq "$sent" ]'
	check "$l: viod refused none of testpmd's frames (bad-header, runt, oversize)" \
		[ "$(tx_refused "$a")" -eq 0 ]
	# Whatever a transmitted is delivered to b or counted as dropped.
	settled() { [ "$(st "$b" rx/packets)" -eq $(($(st "$a" tx/packets) - $(drops "$a" dst-full link-down) - $(all_drops "$b"))) ]; }
	within 10 settled
	brx=$(st "$b" rx/packets)
	lost=$(($(drops "$a" dst-full link-down) + $(all_drops "$b")))
	check "$l: $a tx/packets = $b rx/packets + drops ($atx = $brx + $lost; dst-full $(st "$a" drops/dst-full))" \
		[ "$atx" -eq $((brx + lost)) ]
	check "$l: frames reached $b ($brx)" [ "$brx" -gt 0 ]
	# testpmd-rx has read everything viod put in its ring.
	rx_read() { local r; read -r r _ _ _ < <(pmd_nic "$rp") && [ "$r" = "$brx" ]; }
	within 10 rx_read
	read -r got _ _ _ < <(pmd_stop "$rp") || got=-1
	check "$l: testpmd-$rp received what viod delivered to $b ($got = $brx)" [ "$got" -eq "$brx" ]
	pmd_quit "$tp"
	pmd_quit "$rp"
}

# (a) txonly -> rxonly, one queue pair.
start rx 0 b 1 rxonly
start tx 1 a 1 txonly
check "(a) frames flow from testpmd-tx through a to b" within 20 at_least b rx/packets 1000
accounting tx rx a b "(a)"

# (b) macswap both ways: frames circulate.
start mf 0 f 1 macswap
# --tx-first is refused in interactive mode: its command twin instead.
start me 1 e 1 macswap
pmd_stop me >/dev/null || bail "testpmd me did not stop"
pmd_cmd me "start tx_first"
busy() { for k in e/tx e/rx f/tx f/rx; do at_least "${k%/*}" "${k#*/}/packets" 1000 || return 1; done; }
check "(b) frames circulate: e and f each send and receive >= 1000" within 20 busy
for p in me mf; do
	read -r rx0 tx0 _ _ < <(pmd_nic "$p") || rx0=-1
	grows() { local r t; read -r r t _ _ < <(pmd_nic "$p") && [ "$r" -gt "$rx0" ] && [ "$t" -gt "$tx0" ]; }
	check "(b) testpmd-$p's RX and TX counts grow (from $rx0/$tx0)" \
		within 10 eval '[ "$rx0" -gt 0 ] && [ "$tx0" -gt 0 ] && grows'
done
check "(b) the switch learned an address on each port" \
	eval '[ "$(st e switch/macs)" -ge 1 ] && [ "$(st f switch/macs)" -ge 1 ]'
for pd in me:e mf:f; do
	p=${pd%:*} d=${pd#*:}
	read -r rx tx _ _ < <(pmd_stop "$p") || tx=-1
	within 10 equals "$tx" took "$d"
	check "(b) testpmd-$p's TX ($tx) = $d's tx/packets ($(st "$d" tx/packets))" \
		eval '[ "$tx" -gt 0 ] && [ "$tx" -eq "$(took "$d")" ]'
	check "(b) testpmd-$p's RX ($rx) <= $d's rx/packets ($(st "$d" rx/packets))" \
		eval '[ "$rx" -gt 0 ] && [ "$rx" -le "$(st "$d" rx/packets)" ]'
done
pmd_quit me
pmd_quit mf

# (c) two queue pairs on two workers.
start rx2 0 d 2 rxonly
start tx2 1 c 2 txonly
both() { at_least c queues/1/packets 1000 && at_least c queues/3/packets 1000; }
check "(c) 2 queue pairs: both of c's transmit queues carry frames" within 20 both
echo "# (c) c's tx queues: $(st c queues/1/packets) $(st c queues/3/packets); d's rx queues: $(st d queues/0/packets) $(st d queues/2/packets)"
accounting tx2 rx2 c d "(c)"

check "viod still running" kill -0 "$viod_pid"
kill -TERM "$viod_pid"
wait "$viod_pid"
rc=$?
viod_pid=""
check "viod exits 0 on SIGTERM" [ "$rc" -eq 0 ]
[ "$fails" -eq 0 ] || logs
tap_end
