#!/usr/bin/env bash
# virtio-net through viod against DPDK's vhost PMD (testpmd net_vhost) in
# one run, with DPDK's virtio-user testpmd in txonly mode as the client
# (a real vhost-user front-end), at 64-byte frames (packets per second)
# and 1500-byte frames (throughput):
#  (i)  into one back end that consumes the frames: viod with one port on
#       its switch (flooded to no other port), DPDK's vhost PMD in rxonly;
#  (ii) through a switch: txonly on one port, an rxonly testpmd on a
#       second: viod's switch (ports a and b) vs DPDK's vhost PMD with
#       two ports in io forwarding (port 0 to port 1, what testpmd offers
#       as a switch); the rate the second port receives, and the drops.
# Rates come from counters read at both ends of a measured interval
# (viod's store; the vhost testpmd's "show port stats all"), never from
# testpmd's instantaneous pps line; each back end's CPU time (utime +
# stime of all its threads, /proc/PID/stat) over the same interval is
# given per million packets.
#
# CPU placement (2 CPUs): the back end gets CPU 0 (viod under taskset -c 0,
# every thread; the vhost testpmd's forwarding lcore is lcore 0), the
# client's forwarding lcore CPU 1 (testpmd's main lcore, idle at its
# prompt, on the other CPU). In (ii) both clients' forwarding lcores
# share CPU 1, so each back end keeps a CPU of its own as in (i).
#
# Usage: bench/net.sh [BUILD_DIR]
# Environment: BENCH_SECONDS (per run, default 5), BENCH_SIZES ("64 1500"),
# BENCH_ROUNDS (default 1: rounds of every run, alternating the back ends;
# each figure is then the run with the median rate: on a machine shared
# with other work, 3 or more), TESTPMD (default dpdk-testpmd).
# Target: viod >= 0.7x DPDK vhost's packets per second at 64 bytes.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
secs=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-1}
sizes=${BENCH_SIZES:-64 1500}
viod=$build/viod
store=$build/tools/viod-store
for b in "$viod" "$store"; do
	[ -x "$b" ] || { echo "bench: build first (meson setup build && ninja -C build): $b" >&2; exit 2; }
done
# shellcheck source=../tests/interop/testpmd-lib.sh
. "$top/tests/interop/testpmd-lib.sh"
command -v "$TESTPMD" >/dev/null || { echo "bench: $TESTPMD not found (tools/install-deps.sh)" >&2; exit 2; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/viod-bench-net.XXXXXX")
ctl=$dir/ctl
viod_pid=""
viod_stop() { reap "$viod_pid"; viod_pid=""; }
trap 'set +e; pmd_cleanup; viod_stop; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM HUP
hz=$(getconf CLK_TCK)

die() {
	echo "bench: $*" >&2
	for f in "$dir"/*.log; do
		[ -e "$f" ] || continue
		echo "--- ${f##*/}" >&2
		tail -n 20 "$f" >&2
	done
	exit 1
}

# viod_start DEV...: viod on CPU 0 with a port on switch s0 per DEV.
viod_start() {
	local args=() socks=("$ctl") d

	for d in "$@"; do
		rm -f "$dir/$d.sock"
		args+=(--device "net,id=$d,socket=$dir/$d.sock,backend=switch:s0")
		socks+=("$dir/$d.sock")
	done
	rm -f "$ctl"
	taskset -c 0 "$viod" --control "$ctl" "${args[@]}" >>"$dir/viod.log" 2>&1 &
	viod_pid=$!
	within 10 sockets "${socks[@]}" || die "viod did not start"
}
sockets() { local s; for s in "$@"; do [ -S "$s" ] || return 1; done; }

st() { "$store" -s "$ctl" read "/devices/$1/$2"; }
# CPU ticks (user + system, all threads) of process $1.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# A counter source prints "PACKETS BYTES" now (one store request, one
# testpmd command: one moment).
count_viod_tx() { "$store" -s "$ctl" read /devices/a/tx/packets /devices/a/tx/bytes | paste -sd ' '; }
count_vhost_rx() { local p b; read -r p _ b _ < <(pmd_nic vh) && echo "$p $b"; }
# A switch: "OUT_PACKETS OUT_BYTES IN_PACKETS DROPS", what reached the
# receiving client, what the sending one gave, and what was dropped.
count_switch() {
	local keys=(b/rx/packets b/rx/bytes a/tx/packets) d r

	for d in a b; do
		for r in no-buffers dst-full link-down gso oversize bad-header runt backend; do
			keys+=("$d/drops/$r")
		done
	done
	"$store" -s "$ctl" read "${keys[@]/#//devices/}" | awk '
		NR <= 3 { v[NR] = $1; next } { drops += $1 }
		END { printf "%.0f %.0f %.0f %.0f\n", v[1], v[2], v[3], drops }'
}
# DPDK io forwarding port 0 -> port 1: what port 0 took in and port 1 put
# out; the difference was dropped (testpmd frees what port 1 refuses).
count_vhost_switch() {
	local out ob in

	read -r _ out _ ob < <(pmd_nic vh) || return 1
	read -r _ in _ _ _ < <(pmd_block "$dir/vh.log" "NIC statistics for port 0")
	echo "$out $ob $in $((in - out))"
}
moving() { local p; read -r p _ < <("$1") && [ "$p" -gt 0 ]; }

# measure COUNTER PID: waits for traffic, warms up for a second, then
# prints "SECONDS CPU_SECONDS DELTA..." over BENCH_SECONDS, the counters'
# differences (timestamps are the midpoints of each read).
measure() {
	local counter=$1 pid=$2 a b t0 t1 c0 c1

	within 20 moving "$counter" || die "no traffic reached the back end in 20 s"
	sleep 1
	a=$(now_us); read -ra c0 < <("$counter"); b=$(now_us)
	t0=$(((a + b) / 2)); local k0; k0=$(ticks "$pid")
	sleep "$secs"
	a=$(now_us); read -ra c1 < <("$counter"); b=$(now_us)
	t1=$(((a + b) / 2)); local k1; k1=$(ticks "$pid")
	local out i
	out=$(awk -v d=$((t1 - t0)) -v k=$((k1 - k0)) -v hz="$hz" 'BEGIN { printf "%.6f %.4f", d / 1e6, k / hz }')
	for i in "${!c0[@]}"; do out+=" $((c1[i] - c0[i]))"; done
	echo "$out"
}

client() { pmd_start tx 1 "net_virtio_user0,path=$dir/$1.sock,queues=1" --forward-mode=txonly --txpkts="$2" ||
	die "the client testpmd did not start"; }
receiver() { pmd_start rx 1 "net_virtio_user0,path=$dir/$1.sock,queues=1" --forward-mode=rxonly ||
	die "the receiving testpmd did not start"; }

declare -A res
for round in $(seq "$rounds"); do
	for size in $sizes; do
		echo "bench: round $round, $size-byte frames into viod" >&2
		viod_start a
		client a "$size"
		res[viod/$size/$round]=$(measure count_viod_tx "$viod_pid")
		pmd_quit tx
		viod_stop

		echo "bench: $size-byte frames into DPDK's vhost PMD" >&2
		rm -f "$dir/vh.sock"
		pmd_start vh 0 "net_vhost0,iface=$dir/vh.sock,queues=1" --forward-mode=rxonly ||
			die "the vhost testpmd did not start"
		client vh "$size"
		res[dpdk/$size/$round]=$(measure count_vhost_rx "${pmd_pid[vh]}")
		pmd_quit tx
		pmd_quit vh

		echo "bench: $size-byte frames through viod's switch, a to b" >&2
		viod_start a b
		receiver b
		client a "$size"
		res[switch/$size/$round]=$(measure count_switch "$viod_pid")
		pmd_quit tx
		pmd_quit rx
		viod_stop

		echo "bench: $size-byte frames through DPDK's vhost PMD, port 0 to port 1" >&2
		rm -f "$dir/vh0.sock" "$dir/vh1.sock"
		pmd_start vh 0 "net_vhost0,iface=$dir/vh0.sock,queues=1 net_vhost1,iface=$dir/vh1.sock,queues=1" \
			--forward-mode=io || die "the vhost testpmd did not start"
		receiver vh1
		client vh0 "$size"
		res[dpdksw/$size/$round]=$(measure count_vhost_switch "${pmd_pid[vh]}")
		pmd_quit tx
		pmd_quit rx
		pmd_quit vh
	done
done

# median KEY: the run of KEY whose rate (third field over the first) is
# the median of its rounds.
median() {
	local r

	for r in $(seq "$rounds"); do echo "${res[$1/$r]}"; done |
		awk '{ print $3 / $1, $0 }' | sort -g -k1,1 |
		awk '{ l[NR] = $0 } END { m = l[int((NR + 1) / 2)]; sub(/^[^ ]+ /, "", m); print m }'
}

# row SECONDS CPU PACKETS BYTES: "pps Gbit/s cpu-s/Mpkt"
row() { awk -v s="$1" -v c="$2" -v p="$3" -v b="$4" 'BEGIN {
	printf "%10.0f %7.2f %9.2f", p / s, b * 8 / s / 1e9, (p > 0 ? c * 1e6 / p : 0) }'; }

printf '\nvirtio-net, DPDK virtio-user testpmd txonly as the client, %s s per run, median of %s round(s) (%s CPUs; back end on CPU 0, client on CPU 1)\n' \
	"$secs" "$rounds" "$(nproc)"
printf '(i) into the back end: viod (one switch port) vs DPDK vhost PMD (testpmd rxonly)\n'
printf '%5s | %10s %7s %9s | %10s %7s %9s | %6s %6s\n' size "viod pps" Gbit/s cpu/Mpkt "dpdk pps" Gbit/s cpu/Mpkt pps× cpu×
for size in $sizes; do
	read -r vs vc vp vb <<<"$(median "viod/$size")"
	read -r ds dc dp db <<<"$(median "dpdk/$size")"
	printf '%5d | %s | %s | ' "$size" "$(row "$vs" "$vc" "$vp" "$vb")" "$(row "$ds" "$dc" "$dp" "$db")"
	awk -v vs="$vs" -v vc="$vc" -v vp="$vp" -v ds="$ds" -v dc="$dc" -v dp="$dp" 'BEGIN {
		vr = vp / vs; dr = dp / ds
		printf "%5.2fx %5.2fx\n", (dr > 0 ? vr / dr : 0), (vc > 0 && dp > 0 ? (dc / dp) / (vc / vp) : 0) }'
done
printf '(ii) through a switch: txonly on one port, testpmd rxonly on a second (both clients on CPU 1):\n'
printf '     viod'"'"'s switch a->b vs DPDK vhost PMD io forwarding port 0->1\n'
printf '%5s | %10s %10s %7s %6s %9s | %10s %10s %7s %6s %9s | %6s\n' size "viod in" "viod out" Gbit/s drop% cpu/Mpkt \
	"dpdk in" "dpdk out" Gbit/s drop% cpu/Mpkt out×
for size in $sizes; do
	read -r vs vc vout vb vin vd <<<"$(median "switch/$size")"
	read -r ds dc dout db din dd <<<"$(median "dpdksw/$size")"
	awk -v size="$size" -v vs="$vs" -v vc="$vc" -v vout="$vout" -v vb="$vb" -v vin="$vin" -v vd="$vd" \
		-v ds="$ds" -v dc="$dc" -v dout="$dout" -v db="$db" -v din="$din" -v dd="$dd" 'BEGIN {
		printf "%5d | %10.0f %10.0f %7.2f %6.1f %9.2f | %10.0f %10.0f %7.2f %6.1f %9.2f | %5.2fx\n", size,
			vin / vs, vout / vs, vb * 8 / vs / 1e9, (vin > 0 ? 100 * vd / vin : 0), (vin > 0 ? vc * 1e6 / vin : 0),
			din / ds, dout / ds, db * 8 / ds / 1e9, (din > 0 ? 100 * dd / din : 0), (din > 0 ? dc * 1e6 / din : 0),
			(dout > 0 ? (vout / vs) / (dout / ds) : 0) }'
done
echo "pps×: viod/dpdk packets per second (target >= 0.7 at 64 bytes); cpu×: dpdk/viod CPU per packet (> 1: viod spends less);"
echo "cpu/Mpkt: back end CPU seconds per million packets (in (ii): per frame taken in); in/out: packets per second taken from the sender, given to the receiver;"
echo "drop%: share of the frames taken in that were dropped (viod: every drop counter of a and b; dpdk: port 0 RX - port 1 TX); out×: viod/dpdk out"
