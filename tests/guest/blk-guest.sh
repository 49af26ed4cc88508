#!/bin/sh
# In-guest half of blk.sh, run as /test.sh (busybox sh). The kernel
# command line says what to do: viod.phase=write|verify|ro, and
# viod.queues=N, the queues the disk should have (/sys/block/vda/mq).
#   write:  mkfs.ext4 on /dev/vda, mount, write the data files (one writer
#           pinned to each CPU with taskset, O_DIRECT, fsync) and one file
#           through the page cache, record their md5sums in MD5SUMS, print
#           them as "MD5 NAME SUM", unmount.
#   verify: mount, print the files' md5sums the same way and check them
#           against MD5SUMS; delete the data files, sync, say TRIM-READY
#           and wait for the host's GO on the host channel (/dev/ttyS1),
#           fstrim -v, say TRIM-DONE, unmount. Leaves "buffered" and
#           MD5SUMS for the ro phase.
#   ro:     the disk is read-only: /sys/block/vda/ro is 1, writes to the
#           raw disk fail; the file system mounts read-only and "buffered"
#           still has its checksum; creating a file fails.
# Prints TAP body lines (the host renumbers them) and exits 0 only if
# every check passed.
set -u
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
# check DESC CMD...: one TAP line for CMD's success; its output, if it
# failed, as comments.
check() {
	d=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		ok "$d"
	else
		not_ok "$d"
		sed 's/^/# /' /tmp/check.out
	fi
}
arg() { sed -n "s/.*viod\\.$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
phase=$(arg phase)
queues=$(arg queues)
ncpu=$(nproc)
files="data0 data1 data2 data3 buffered"

# io_errors: the kernel logged an I/O or ext4 error.
io_errors() {
	dmesg | grep -E 'I/O error|blk_update_request|critical medium error|Buffer I/O|EXT4-fs error|EXT4-fs warning'
}
no_io_errors() {
	errs=$(io_errors)
	if [ -z "$errs" ]; then
		ok "$phase: no I/O or ext4 errors in the kernel log"
	else
		not_ok "$phase: no I/O or ext4 errors in the kernel log"
		echo "$errs" | sed 's/^/# /'
	fi
}
print_sums() { # prints "MD5 NAME SUM" for each of $files
	(cd /mnt && md5sum $files) | while read -r sum name; do
		echo "MD5 $name $sum"
	done
}

check "$phase: /dev/vda is a block device" [ -b /dev/vda ]
mq=$(ls /sys/block/vda/mq 2>/dev/null | wc -l)
check "$phase: /sys/block/vda/mq has $queues entries ($mq; $ncpu CPUs)" [ "$mq" -eq "$queues" ]
mkdir -p /mnt

case $phase in
write)
	check "write: mkfs.ext4 /dev/vda" mkfs.ext4 -q -F /dev/vda
	check "write: mount /dev/vda" mount -t ext4 /dev/vda /mnt
	# 6 MiB of random data in the initramfs first, so that the writers
	# below only write.
	for k in 0 1 2 3; do
		head -c 1572864 /dev/urandom >"/tmp/data$k"
	done
	# One writer per CPU (the four files over the CPUs there are): with
	# O_DIRECT each request leaves from the writer's CPU, so from the
	# queue that CPU maps to.
	pids=""
	for k in 0 1 2 3; do
		taskset -c $((k % ncpu)) dd if="/tmp/data$k" of="/mnt/data$k" bs=65536 \
			oflag=direct conv=fsync 2>"/tmp/dd$k.err" &
		pids="$pids $!"
	done
	k=0
	for p in $pids; do
		check "write: writer $k on CPU $((k % ncpu)): data$k written (O_DIRECT, fsync)" wait "$p"
		k=$((k + 1))
	done
	# And one through the page cache and writeback.
	check "write: buffered written" sh -c 'head -c 2097152 /dev/urandom >/mnt/buffered'
	check "write: sync" sync
	check "write: md5sums recorded" sh -c "cd /mnt && md5sum $files >MD5SUMS && sync"
	print_sums
	check "write: umount" umount /mnt
	;;
verify)
	# Opened before TRIM-READY: opening the port drops earlier input.
	exec 3<>/dev/ttyS1 && stty raw -echo <&3 || not_ok "verify: host channel /dev/ttyS1 opens"
	check "verify: mount /dev/vda" mount -t ext4 /dev/vda /mnt
	print_sums
	check "verify: md5sum -c MD5SUMS" sh -c 'cd /mnt && md5sum -c MD5SUMS'
	check "verify: data files deleted" rm /mnt/data0 /mnt/data1 /mnt/data2 /mnt/data3
	check "verify: sync" sync
	echo TRIM-READY
	word=""
	# shellcheck disable=SC3045 # busybox sh has read -t
	read -t 120 -r word <&3
	check "verify: host measured the image before fstrim (got '$word')" [ "$word" = GO ]
	if out=$(fstrim -v /mnt 2>&1); then
		ok "verify: fstrim -v /mnt: $out"
	else
		not_ok "verify: fstrim -v /mnt: $out"
	fi
	echo TRIM-DONE
	check "verify: buffered still intact after fstrim" sh -c 'cd /mnt && grep " buffered$" MD5SUMS | md5sum -c'
	check "verify: umount" umount /mnt
	;;
ro)
	check "ro: /sys/block/vda/ro is 1 ($(cat /sys/block/vda/ro))" [ "$(cat /sys/block/vda/ro)" = 1 ]
	if out=$(dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct conv=fsync 2>&1); then
		not_ok "ro: a write to /dev/vda (O_DIRECT) fails"
	else
		ok "ro: a write to /dev/vda (O_DIRECT) fails: $(echo "$out" | head -n 1)"
	fi
	if out=$(dd if=/dev/zero of=/dev/vda bs=65536 seek=16 count=1 conv=fsync 2>&1); then
		not_ok "ro: a buffered write to /dev/vda with fsync fails"
	else
		ok "ro: a buffered write to /dev/vda with fsync fails: $(echo "$out" | head -n 1)"
	fi
	check "ro: mount -o ro /dev/vda" mount -t ext4 -o ro /dev/vda /mnt
	check "ro: buffered reads back with its checksum" sh -c 'cd /mnt && grep " buffered$" MD5SUMS | md5sum -c'
	if touch /mnt/new 2>/dev/null; then
		not_ok "ro: creating a file fails"
	else
		ok "ro: creating a file fails"
	fi
	check "ro: umount" umount /mnt
	;;
*)
	not_ok "viod.phase=write|verify|ro on the kernel command line (got '$phase')"
	;;
esac
# The ro phase's refused writes are I/O errors by design.
[ "$phase" = ro ] || no_io_errors
[ "$fails" -eq 0 ]
