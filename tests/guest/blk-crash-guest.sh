#!/bin/sh
# In-guest half of blk-crash.sh, run as /test.sh (busybox sh): writes
# 64 KiB blocks 1..viod.blocks (kernel command line) to the raw disk, block
# i at offset i * 64 KiB holding the 16-byte line "viod-blk-%06d\n" of i
# 4096 times, each with O_DIRECT and an fsync, and prints "SYNCED i" after
# each one that succeeded, while the host kills and restarts viod under
# it. Ends with "CRASH-DONE failed=F churn-failed=C" and TAP body lines;
# exits 0 only if nothing failed.
set -u
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }

blocks=$(sed -n 's/.*viod\.blocks=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$blocks" ] || { not_ok "viod.blocks= on the kernel command line"; exit 1; }
[ -b /dev/vda ] && ok "/dev/vda is there" || not_ok "/dev/vda is there"

# Two background loops keep I/O in flight whenever the host kills viod:
# each reads 4 MiB and writes 4 MiB (one O_DIRECT call each, which the
# guest splits into requests that are in flight together, then an fsync)
# to its own scratch area after the numbered blocks, and counts what
# failed.
rm -f /tmp/stop /tmp/churn-failed.*
churn() { # J: loop J, on scratch area J
	cf=0
	while [ ! -e /tmp/stop ]; do
		dd if=/dev/vda of=/dev/null bs=4194304 count=1 iflag=direct 2>/dev/null ||
			cf=$((cf + 1))
		dd if=/dev/zero of=/dev/vda bs=4194304 seek=$(((blocks + 1) * 65536 + $1 * 4194304)) \
			count=1 oflag=direct,seek_bytes conv=fsync 2>/dev/null || cf=$((cf + 1))
	done
	echo "$cf" >"/tmp/churn-failed.$1"
}
churn 0 &
churn0=$!
churn 1 &
churn1=$!

failed=0
i=1
while [ "$i" -le "$blocks" ]; do
	yes "$(printf 'viod-blk-%06d' "$i")" | head -c 65536 >/tmp/block
	if dd if=/tmp/block of=/dev/vda bs=65536 seek="$i" count=1 oflag=direct conv=fsync \
		2>/tmp/dd.err; then
		echo "SYNCED $i"
	else
		failed=$((failed + 1))
		echo "FAILED $i: $(tr '\n' ' ' </tmp/dd.err)"
	fi
	i=$((i + 1))
done
touch /tmp/stop
wait "$churn0" "$churn1"
cf=$(($(cat /tmp/churn-failed.0 2>/dev/null || echo 1000000) +
	$(cat /tmp/churn-failed.1 2>/dev/null || echo 1000000)))
echo "CRASH-DONE failed=$failed churn-failed=$cf"

[ "$failed" -eq 0 ] && ok "all $blocks block writes and fsyncs succeeded" ||
	not_ok "all $blocks block writes and fsyncs succeeded ($failed failed)"
[ "$cf" -eq 0 ] && ok "the background reads and writes all succeeded" ||
	not_ok "the background reads and writes all succeeded ($cf failed)"
errs=$(dmesg | grep -E 'I/O error|blk_update_request|critical medium error|Buffer I/O')
if [ -z "$errs" ]; then
	ok "no I/O errors in the kernel log"
else
	not_ok "no I/O errors in the kernel log"
	echo "$errs" | sed 's/^/# /'
fi
[ "$fails" -eq 0 ]
