#!/usr/bin/env bash
# Guest test: two Linux guests' virtio_net on one viod, through stock
# QEMU's vhost-user netdev and virtio-net-pci, their two net devices
# ports of viod's built-in switch (backend=switch:sw0). Both guests run
# at once (net-guest.sh is the guest side):
#   - each finds eth0 (virtio_net, the MAC QEMU gave it), addresses it
#     (192.0.2.1 and .2/24) and says NET-READY;
#   - the host tells both to PING: A pings B and B pings A, 3 replies each;
#     each port has then learned exactly its guest's MAC (switch/macs);
#   - B listens with nc and says LISTENING; the host tells A to SEND: A
#     sends a file of random bytes over TCP, B receives it; the SHA-256
#     sums A and B print match;
#   - viod counted packets both ways on both devices, at least the file's
#     bytes out of A and into B, and no bad headers; it exits 0 on SIGTERM.
# Usage: net-switch.sh VIOD VIOD-STORE. TAP on stdout; on failure, the
# consoles' tails and viod's log on stderr. SKIPs only when QEMU is
# missing. Environment: VIOD_QEMU (QEMU binary, default
# qemu-system-x86_64), VIOD_GUEST_TIMEOUT (seconds per guest, default
# 150), VIOD_NET_BYTES (file size, default 4 MiB), VIOD_NET_A_OPTS and
# VIOD_NET_B_OPTS (more options for device a or b, e.g. offloads=off),
# VIOD_NET_QUEUES (queue pairs of each device and CPUs of each guest,
# default 1; with more, every transmit queue must carry packets),
# VIOD_NET_VERBOSE=1 (viod --verbose), VIOD_CACHE (see
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
if ! command -v "$qemu" >/dev/null; then
	echo "1..0 # SKIP $qemu not found"
	exit 0
fi

# shellcheck source-path=SCRIPTDIR source=net-lib.sh
. "$here/net-lib.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-net-switch.XXXXXX")
ctl=$tmp/control
cleanup() {
	net_lib_cleanup
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "Bail out! interrupted"; exit 1' INT TERM HUP

if ! dir=$("$top/tools/guest/build-guest.sh" | tail -n 1) || [ ! -s "$dir/vmlinuz" ]; then
	echo "Bail out! cannot build the guest image"
	exit 1
fi
ok "guest image built ($dir)"
echo "# QEMU: $(command -v "$qemu") ($("$qemu" --version | head -n 1))"

mac_a=52:54:00:12:34:0a mac_b=52:54:00:12:34:0b
"$viod" ${VIOD_NET_VERBOSE:+--verbose} --control "$ctl" \
	--device "net,id=a,socket=$tmp/a.sock,backend=switch:sw0,mac=$mac_a,queue-pairs=$queues${VIOD_NET_A_OPTS:+,$VIOD_NET_A_OPTS}" \
	--device "net,id=b,socket=$tmp/b.sock,backend=switch:sw0,mac=$mac_b,queue-pairs=$queues${VIOD_NET_B_OPTS:+,$VIOD_NET_B_OPTS}" \
	>"$tmp/viod.log" 2>&1 &
viod_pid=$!
wait_viod_sockets "$ctl" "$tmp/a.sock" "$tmp/b.sock"
for d in a b; do
	check "$d: the store says backend switch:sw0" [ "$(key "$ctl" "/devices/$d/backend")" = switch:sw0 ]
done

t0=$SECONDS
start_guest A "$tmp/a.sock" "$mac_a" \
	"viod.role=send viod.ip=192.0.2.1/24 viod.peer=192.0.2.2 viod.bytes=$bytes"
start_guest B "$tmp/b.sock" "$mac_b" \
	"viod.role=recv viod.ip=192.0.2.2/24 viod.peer=192.0.2.1 viod.bytes=$bytes"

if wait_line A NET-READY && wait_line B NET-READY; then
	ok "both guests booted and addressed eth0 ($((SECONDS - t0)) s)"
	say A PING
	say B PING
	if wait_line A PING-DONE && wait_line B PING-DONE; then
		ok "both guests pinged ($((SECONDS - t0)) s)"
		for d in a b; do
			m=$(key "$ctl" "/devices/$d/switch/macs")
			check "$d: its switch port learned one MAC ($m)" [ "$m" = 1 ]
		done
	else
		not_ok "both guests pinged"
	fi
	if wait_line B LISTENING; then
		say A SEND
	else
		not_ok "B listens"
	fi
else
	not_ok "both guests booted and addressed eth0"
fi
finish_guest A
finish_guest B
echo "# both guests done after $((SECONDS - t0)) s"

sent=$(sum_line A sent) received=$(sum_line B received)
echo "# A sent $bytes bytes with SHA-256 ${sent:-?}; B received ${received:-?}"
check "B received the file A sent (SHA-256 ${received:-none})" \
	[ -n "$sent" -a "$sent" = "$received" ]

for d in a b; do
	check_counters "$ctl" "$d" "$queues"
done
check "a: tx/bytes >= the file ($(key "$ctl" /devices/a/tx/bytes))" \
	[ "$(key "$ctl" /devices/a/tx/bytes)" -ge "$bytes" ]
check "b: rx/bytes >= the file ($(key "$ctl" /devices/b/rx/bytes))" \
	[ "$(key "$ctl" /devices/b/rx/bytes)" -ge "$bytes" ]
stop_viod

echo "1..$n"
[ "$fails" -eq 0 ]
