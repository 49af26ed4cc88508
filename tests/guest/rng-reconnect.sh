#!/usr/bin/env bash
# Guest test: QEMU's reconnect chardev option. A guest reads viod's entropy,
# then viod is stopped (SIGTERM) and started again on the same socket while
# the guest runs; QEMU reconnects and the guest reads again.
# Usage: rng-reconnect.sh VIOD_BINARY. TAP on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
qemu=${VIOD_QEMU:-qemu-system-x86_64}
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
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	[ -s "$tmp/viod.log" ] && sed 's/^/viod: /' "$tmp/viod.log" >&2
	rm -rf "$tmp"
}
trap cleanup EXIT

start_viod() {
	"$viod" --verbose --device "rng,id=rng0,socket=$sock" >>"$tmp/viod.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.05; done
	return 1
}

dir=$("$top/tools/guest/build-guest.sh" | tail -n 1)
start_viod || { echo "Bail out! viod did not start"; exit 1; }

restarted=0
while IFS= read -r line; do
	printf '%s\n' "$line" >>"$tmp/console"
	case $line in
	VIOD-RECONNECT-READY*)
		kill -TERM "$pid"
		wait "$pid" && rs=0 || rs=$?
		[ "$rs" -eq 0 ] && ok "first viod exited 0 under a running guest" ||
			not_ok "first viod exited 0 (status $rs)"
		start_viod && ok "second viod listening on the same socket" ||
			not_ok "second viod listening"
		restarted=1
		;;
	"ok "* | "not ok "*)
		case $line in
		ok*) ok "guest: ${line#ok [0-9]* - }" ;;
		*) not_ok "guest: ${line#not ok [0-9]* - }" ;;
		esac
		;;
	esac
done < <("$top/tools/guest/run-guest.sh" --kernel "$dir/vmlinuz" --initrd "$dir/initrd.img" \
	--script "$here/rng-reconnect-guest.sh" --timeout 120 --qemu "$qemu" -- \
	-chardev "socket,id=c0,path=$sock,reconnect-ms=500" \
	-device vhost-user-rng-pci,chardev=c0 2>&2)

[ "$restarted" -eq 1 ] && ok "viod was restarted mid-run" || not_ok "viod was restarted mid-run"
grep -q 'VIOD-GUEST-EXIT 0' "$tmp/console" && ok "guest test passed" || {
	not_ok "guest test passed"
	tail -30 "$tmp/console" >&2
}
c=$(grep -c 'front-end connected' "$tmp/viod.log" || true)
[ "$c" -ge 2 ] && ok "QEMU reconnected to the new viod ($c connections)" ||
	not_ok "QEMU reconnected ($c connections)"
kill -TERM "$pid" && wait "$pid" && ok "second viod exits 0" || not_ok "second viod exits 0"
pid=""
echo "1..$n"
[ "$fails" -eq 0 ]
