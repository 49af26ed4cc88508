#!/bin/sh
# In-guest virtio-rng test, run as /test.sh by the guest's init (busybox sh).
# Prints TAP body lines (no plan: the host renumbers them and owns the plan)
# and exits 0 only if every check passed.
set -u

n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }

cur=""
for f in /sys/class/misc/hw_random/rng_current \
	/sys/devices/virtual/misc/hw_random/rng_current; do
	if [ -r "$f" ]; then
		cur=$(cat "$f")
		break
	fi
done
case $cur in
virtio_rng*) ok "rng_current is $cur" ;;
*) not_ok "rng_current is virtio_rng* (got '${cur:-nothing}')"
   [ -r /sys/class/misc/hw_random/rng_available ] &&
	echo "# rng_available: $(cat /sys/class/misc/hw_random/rng_available)" ;;
esac

# head -c loops until it has 64 bytes or hits EOF/error.
for i in 1 2; do
	if head -c 64 /dev/hwrng >"/tmp/rng$i" 2>"/tmp/rng$i.err"; then
		size=$(wc -c <"/tmp/rng$i")
		if [ "$size" -eq 64 ]; then
			ok "read $i: 64 bytes from /dev/hwrng"
		else
			not_ok "read $i: 64 bytes from /dev/hwrng (got $size)"
		fi
	else
		not_ok "read $i: 64 bytes from /dev/hwrng ($(cat "/tmp/rng$i.err"))"
	fi
done

if [ -s /tmp/rng1 ] && [ -s /tmp/rng2 ] && ! cmp -s /tmp/rng1 /tmp/rng2; then
	ok "the two reads differ"
else
	not_ok "the two reads differ"
fi
for i in 1 2; do
	[ -s "/tmp/rng$i" ] && echo "# read $i: $(od -An -tx1 "/tmp/rng$i" | tr -d ' \n')"
done

[ "$fails" -eq 0 ]
