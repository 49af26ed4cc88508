#!/usr/bin/env bash
# Guest test: QEMU's reconnect chardev option. A guest reads viod's entropy,
# then viod is stopped (SIGTERM) and started again on the same socket while
# the guest runs; QEMU reconnects, redoes the whole vhost-user handshake with
# the new viod, and the guest, told so over a second serial port, reads
# again.
#
# Usage: rng-reconnect.sh VIOD_BINARY. TAP on stdout; logs (console, viod)
# on stderr. SKIPs only when QEMU is missing.
# Environment: VIOD_PATCHED_QEMU, else VIOD_QEMU (QEMU binary, default
# qemu-system-x86_64),
# VIOD_GUEST_TIMEOUT (seconds, default 120), VIOD_CACHE.
#
# Needs a QEMU whose vhost-user-base devices (vhost-user-rng-pci) handle a
# reconnecting chardev: VIOD_PATCHED_QEMU=$(tools/build-qemu.sh). Stock QEMU 10.0
# fails to realize the device ("Failed to set msg fds"), and would abort on
# the reconnect (vhost_dev_start: Assertion 'hdev->vhost_ops' failed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
qemu=${VIOD_PATCHED_QEMU:-${VIOD_QEMU:-qemu-system-x86_64}}
guest_timeout=${VIOD_GUEST_TIMEOUT:-120}
[ $# -eq 1 ] || { echo "usage: $0 VIOD_BINARY" >&2; exit 2; }
viod=$1
if ! command -v "$qemu" >/dev/null; then
	echo "1..0 # SKIP $qemu not found"
	exit 0
fi

n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-reconnect.XXXXXX")
sock=$tmp/rng0.sock
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	for i in 1 2; do
		[ -s "$tmp/viod$i.log" ] && sed "s/^/viod#$i: /" "$tmp/viod$i.log" >&2
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# start_viod N: viod number N, logging to viodN.log; waits for its socket.
start_viod() {
	"$viod" --verbose --control "$tmp/control$1" --device "rng,id=rng0,socket=$sock" >"$tmp/viod$1.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -S "$sock" ] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# set_up N: whether viod number N's log shows QEMU's device start through
# enabling the ring (SET_VRING_ENABLE after SET_VRING_KICK).
set_up() {
	sed -n '/: SET_VRING_KICK$/,$p' "$tmp/viod$1.log" 2>/dev/null | grep -q ': SET_VRING_ENABLE$'
}

dir=$("$top/tools/guest/build-guest.sh" | tail -n 1)
start_viod 1 || { echo "Bail out! viod did not start"; exit 1; }

restarted=0
while IFS= read -r line; do
	printf '%s\n' "$line" >>"$tmp/console"
	case $line in
	VIOD-RECONNECT-READY*)
		kill -TERM "$pid"
		wait "$pid" && rs=0 || rs=$?
		pid=""
		if [ "$rs" -eq 0 ]; then
			ok "first viod exited 0 under a running guest"
		else
			not_ok "first viod exited 0 (status $rs)"
		fi
		if start_viod 2; then
			ok "second viod listening on the same socket"
		else
			not_ok "second viod listening"
		fi
		restarted=1
		# The guest's next read is meant for the new viod: wait (30 s
		# at most) until QEMU has reconnected and started the device.
		for _ in $(seq 300); do set_up 2 && break; sleep 0.1; done
		if set_up 2; then
			ok "QEMU reconnected and started the device on the new viod"
		else
			not_ok "QEMU reconnected and started the device on the new viod within 30 s"
		fi
		echo RESTARTED 1<>"$tmp/host.in"
		;;
	"ok "* | "not ok "*)
		case $line in
		ok*) ok "guest: ${line#ok [0-9]* - }" ;;
		*) not_ok "guest: ${line#not ok [0-9]* - }" ;;
		esac
		;;
	esac
done < <(
	"$top/tools/guest/run-guest.sh" --kernel "$dir/vmlinuz" --initrd "$dir/initrd.img" \
		--script "$here/rng-reconnect-guest.sh" --timeout "$guest_timeout" --qemu "$qemu" \
		--host-channel "$tmp/host" -- \
		-chardev "socket,id=c0,path=$sock,reconnect-ms=500" \
		-device vhost-user-rng-pci,chardev=c0 \
		2>"$tmp/run-guest.err" || true
)
cat "$tmp/run-guest.err" >&2

if [ "$restarted" -eq 1 ]; then
	ok "viod was restarted mid-run"
else
	not_ok "viod was restarted mid-run"
fi
if grep -q 'VIOD-GUEST-EXIT 0' "$tmp/console"; then
	ok "guest test passed"
else
	not_ok "guest test passed"
	tail -30 "$tmp/console" >&2
	if grep -q 'Failed to set msg fds' "$tmp/console" && [ "$restarted" -eq 0 ]; then
		echo "# $qemu could not realize vhost-user-rng-pci on a reconnecting chardev:" \
			"use VIOD_PATCHED_QEMU=\$(tools/build-qemu.sh)"
	fi
fi
# QEMU's own stderr is part of the console; run-guest reports its status.
if grep -q 'Assertion' "$tmp/console" || grep -q 'QEMU exited with' "$tmp/run-guest.err"; then
	not_ok "QEMU exited cleanly"
	grep -h 'Assertion\|QEMU exited with' "$tmp/console" "$tmp/run-guest.err" | sed 's/^/# /'
else
	ok "QEMU exited cleanly"
fi
# The new viod must see a full handshake, not just a resumed session.
h=0
for req in GET_FEATURES SET_OWNER SET_FEATURES SET_VRING_KICK; do
	grep -q ": $req\$" "$tmp/viod2.log" 2>/dev/null && h=$((h + 1))
done
if [ "$h" -eq 4 ]; then
	ok "QEMU redid the handshake with the new viod"
else
	not_ok "QEMU redid the handshake with the new viod ($h of GET_FEATURES, SET_OWNER, SET_FEATURES, SET_VRING_KICK)"
fi
if [ -n "$pid" ] && kill -TERM "$pid" && wait "$pid"; then
	ok "the running viod exits 0 on SIGTERM"
else
	not_ok "the running viod exits 0 on SIGTERM"
fi
pid=""
echo "1..$n"
[ "$fails" -eq 0 ]
