#!/usr/bin/env bash
# Guest test: a Linux guest's virtio_net on viod's tap back end
# (backend=tap:vtap0), through stock QEMU's vhost-user netdev. viod runs
# in a network namespace of the test's own (viod-test-PID), so the tap is
# made there and no frame can leave it; net-guest.sh is the guest side:
#   - the tap exists in the namespace while viod runs; the test gives it
#     192.0.2.1/24 and brings it up;
#   - the guest finds eth0 (virtio_net, QEMU's MAC), takes 192.0.2.2/24,
#     pings the namespace's address; the namespace pings the guest;
#   - a file of random bytes goes from the guest to a listener in the
#     namespace, another from the namespace to the guest (TCP, busybox
#     nc, with the offloads the tap passes); the SHA-256 sums match;
#   - viod counted packets both ways, the files' bytes, no bad headers;
#     it exits 0 on SIGTERM, and the tap goes with it.
# The namespace is deleted on every exit path.
# Usage: net-tap.sh VIOD VIOD-STORE. TAP on stdout; on failure, the
# console's tail and viod's log on stderr. SKIPs when QEMU, ip(8),
# /dev/net/tun or root is missing. Environment: VIOD_QEMU (QEMU binary,
# default qemu-system-x86_64), VIOD_GUEST_TIMEOUT (seconds, default 150),
# VIOD_NET_BYTES (file size, default 4 MiB; 0: ping only), VIOD_NET_OPTS
# (more device options, e.g. offloads=off), VIOD_NET_QUEUES (queue pairs,
# and the guest's CPUs, default 1; with more, every transmit queue must
# carry packets), VIOD_NET_VERBOSE=1 (viod --verbose), VIOD_CACHE (see
# tools/guest/build-guest.sh).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
qemu=${VIOD_QEMU:-qemu-system-x86_64}
guest_timeout=${VIOD_GUEST_TIMEOUT:-150}
bytes=${VIOD_NET_BYTES:-4194304}
queues=${VIOD_NET_QUEUES:-1}
[ $# -eq 2 ] || { echo "usage: $0 VIOD VIOD-STORE" >&2; exit 2; }
viod=$1 vstore=$2
skip=""
if [ "$(id -u)" -ne 0 ]; then
	skip="not root (a tap in a network namespace needs CAP_NET_ADMIN)"
elif [ ! -c /dev/net/tun ]; then
	skip="/dev/net/tun is missing"
elif ! command -v ip >/dev/null; then
	skip="ip (iproute2) not found"
elif ! command -v "$qemu" >/dev/null; then
	skip="$qemu not found"
fi
if [ -n "$skip" ]; then
	echo "1..0 # SKIP $skip"
	exit 0
fi

# shellcheck source-path=SCRIPTDIR source=net-lib.sh
. "$here/net-lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-net-tap.XXXXXX")
ctl=$tmp/control sock=$tmp/t0.sock
ns=viod-test-$$ ns_made="" nc_pid=""
tap=vtap0 host_ip=192.0.2.1 guest_ip=192.0.2.2 mac=52:54:00:12:34:0c
cleanup() {
	if [ -n "$nc_pid" ]; then
		kill -TERM "$nc_pid" 2>/dev/null # timeout passes it on to nc
		wait "$nc_pid" 2>/dev/null
	fi
	net_lib_cleanup
	# viod (the tap's owner) is gone: nothing runs in the namespace now.
	if [ -n "$ns_made" ]; then
		ip netns del "$ns" || echo "# cannot delete network namespace $ns" >&2
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "Bail out! interrupted"; exit 1' INT TERM HUP
in_ns() { ip netns exec "$ns" "$@"; }

if ! dir=$("$top/tools/guest/build-guest.sh" | tail -n 1) || [ ! -s "$dir/vmlinuz" ]; then
	echo "Bail out! cannot build the guest image"
	exit 1
fi
ok "guest image built ($dir)"
echo "# QEMU: $(command -v "$qemu") ($("$qemu" --version | head -n 1))"

if ! ip netns add "$ns"; then
	echo "Bail out! cannot create network namespace $ns"
	exit 1
fi
ns_made=1
ok "network namespace $ns created"

# ip netns exec execs viod: its pid is viod's.
ip netns exec "$ns" "$viod" ${VIOD_NET_VERBOSE:+--verbose} --control "$ctl" \
	--device "net,id=t0,socket=$sock,backend=tap:$tap,mac=$mac,queue-pairs=$queues${VIOD_NET_OPTS:+,$VIOD_NET_OPTS}" \
	>"$tmp/viod.log" 2>&1 &
viod_pid=$!
wait_viod_sockets "$ctl" "$sock"
check "the store says backend tap:$tap" [ "$(key "$ctl" /devices/t0/backend)" = "tap:$tap" ]
check "$tap exists in $ns, not here" \
	eval "ip -n '$ns' link show '$tap' >/dev/null && ! ip link show '$tap' >/dev/null 2>&1"
check "$tap: $host_ip/24, up" eval "ip -n '$ns' link set lo up &&
	ip -n '$ns' addr add '$host_ip/24' dev '$tap' && ip -n '$ns' link set '$tap' up"

# listen_in_ns FILE: busybox nc listening on port 5000 in the namespace,
# writing what it receives to FILE, in the background (nc_pid); returns
# once the socket listens (10 s at most). Its stdin, a FIFO open
# read-write, never ends: an EOF would half-close the connection.
listen_in_ns() {
	mkfifo "$tmp/nc.in"
	ip netns exec "$ns" timeout 100 busybox nc -l -p 5000 <>"$tmp/nc.in" >"$1" 2>"$tmp/nc.err" &
	nc_pid=$!
	for _ in $(seq 100); do
		in_ns busybox netstat -ltn 2>/dev/null | grep -q ':5000 ' && return 0
		kill -0 "$nc_pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

t0=$SECONDS
start_guest G "$sock" "$mac" \
	"viod.role=tap viod.ip=$guest_ip/24 viod.peer=$host_ip viod.bytes=$bytes"
if wait_line G NET-READY; then
	ok "the guest booted and addressed eth0 ($((SECONDS - t0)) s)"
	say G PING
	wait_line G WAIT-HOST
	# iputils' ping if the machine has it, else busybox's (the image's).
	pinger=(ping)
	command -v ping >/dev/null || pinger=(busybox ping)
	if out=$(in_ns "${pinger[@]}" -c 3 -w 60 "$guest_ip" 2>&1); then
		ok "$ns pings the guest (${pinger[*]}): $(echo "$out" | grep -m 1 'packets transmitted')"
	else
		not_ok "$ns pings the guest"
		printf "%s\n" "$out" | sed "s/^/# /"
	fi
	say G DONE
	if [ "$bytes" -gt 0 ]; then
		if ! command -v busybox >/dev/null; then
			not_ok "busybox (its nc) is here for the transfers"
		elif listen_in_ns "$tmp/from-guest"; then
			say G SEND
			wait "$nc_pid"
			st=$?
			nc_pid=""
			check "$ns received the guest's file (nc status $st)" [ "$st" -eq 0 ]
			from_guest=$(sha256sum <"$tmp/from-guest" | cut -d ' ' -f 1)
			sent=$(sum_line G sent)
			check "$ns got $(stat -c %s "$tmp/from-guest") bytes with the guest's SHA-256 (${sent:-none})" \
				[ -n "$sent" -a "$sent" = "$from_guest" ]
			head -c "$bytes" /dev/urandom >"$tmp/to-guest"
			if wait_line G LISTENING; then
				check "$ns sent $bytes bytes to the guest (nc)" \
					in_ns timeout 100 busybox nc -w 30 "$guest_ip" 5000 <"$tmp/to-guest"
			else
				not_ok "the guest listens"
			fi
		else
			not_ok "nc listens in $ns"
			sed 's/^/# nc: /' "$tmp/nc.err"
		fi
	fi
else
	not_ok "the guest booted and addressed eth0"
fi
finish_guest G
echo "# guest done after $((SECONDS - t0)) s"
if [ "$bytes" -gt 0 ] && [ -s "$tmp/to-guest" ]; then
	want=$(sha256sum <"$tmp/to-guest" | cut -d ' ' -f 1)
	received=$(sum_line G received)
	check "the guest received $ns's file (SHA-256 ${received:-none})" [ "$want" = "$received" ]
fi

check_counters "$ctl" t0 "$queues"
if [ "$bytes" -gt 0 ]; then
	for k in rx/bytes tx/bytes; do
		check "$k >= the file ($(key "$ctl" "/devices/t0/$k"))" \
			[ "$(key "$ctl" "/devices/t0/$k")" -ge "$bytes" ]
	done
fi
in_ns ip -s link show "$tap" | sed 's/^/# /'
stop_viod
check "$tap went with viod" eval "! ip -n '$ns' link show '$tap' >/dev/null 2>&1"

echo "1..$n"
[ "$fails" -eq 0 ]
