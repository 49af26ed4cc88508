#!/bin/sh
# In-guest half of rng-reconnect.sh: read, announce, wait until the host
# says it has restarted viod under QEMU (reconnect-ms) and QEMU has set the
# device up on the new one (run-guest.sh --host-channel), then read again.
set -u
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
# 64 bytes, as hex; a read that hangs ends after 60 s with nothing.
read_rng() { timeout 60 head -c 64 /dev/hwrng 2>/dev/null | od -An -tx1 | tr -d ' \n'; }

# Opened before the announcement: opening the port drops earlier input.
exec 3<>/dev/ttyS1 && stty raw -echo <&3 || not_ok "host channel /dev/ttyS1 opens"
a=$(read_rng)
[ "${#a}" -eq 128 ] && ok "read before the back-end restart" || not_ok "read before the back-end restart"
echo "VIOD-RECONNECT-READY"
word=""
# shellcheck disable=SC3045 # busybox sh has read -t
read -t 120 -r word <&3
[ "$word" = RESTARTED ] && ok "host restarted viod" ||
	not_ok "host restarted viod within 120 s (got '$word')"
b=$(read_rng)
[ "${#b}" -eq 128 ] && ok "read after the back-end restart" || not_ok "read after the back-end restart"
[ "$a" != "$b" ] && ok "reads differ" || not_ok "reads differ"
[ "$fails" -eq 0 ]
