#!/bin/sh
# In-guest half of rng-reconnect.sh: read, announce, wait while the host
# restarts viod under QEMU (reconnect-ms), then read again.
set -u
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
read_rng() { head -c 64 /dev/hwrng 2>/dev/null | od -An -tx1 | tr -d ' \n'; }

a=$(read_rng)
[ "${#a}" -eq 128 ] && ok "read before the back-end restart" || not_ok "read before the back-end restart"
echo "VIOD-RECONNECT-READY"
# The host answers by restarting viod; we cannot hear it, so give it a
# fixed window.
sleep 12
b=$(read_rng)
[ "${#b}" -eq 128 ] && ok "read after the back-end restart" || not_ok "read after the back-end restart"
[ "$a" != "$b" ] && ok "reads differ" || not_ok "reads differ"
[ "$fails" -eq 0 ]
