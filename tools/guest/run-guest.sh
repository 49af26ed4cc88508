#!/usr/bin/env bash
# Boot a guest in QEMU (TCG) with guest RAM in a shared memfd, as vhost-user
# needs, and report how the guest's test ended.
#
# Usage: run-guest.sh --kernel PATH --initrd PATH [--script FILE]
#          [--memory MB] [--smp CPUS] [--timeout SECONDS] [--qemu BINARY]
#          [--log FILE] [--append CMDLINE] [--host-channel PATH]
#          -- [extra QEMU args...]
#
# --script FILE is appended to the initrd as /test.sh (mode 0755), in a newc
# cpio after the given initrd; any kernel whose initramfs runs /test.sh and
# prints "VIOD-GUEST-EXIT <rc>" on the serial console fits (build-guest.sh's
# does). The console (QEMU's stdout and stderr, without CRs and terminal
# escapes) is copied to stdout and to --log FILE.
#
# --host-channel PATH gives the guest a second serial port, /dev/ttyS1,
# whose input is what the host writes to the FIFO PATH.in (created if
# missing; `echo WORD 1<>PATH.in` never blocks), so that a guest can wait
# for the host instead of sleeping. The guest should open the port before
# it tells the host it is ready (opening it drops any input received so
# far) and keep it open: `exec 3<>/dev/ttyS1; stty raw -echo <&3`, then
# `read -t SECONDS -r word <&3`. Its output goes to the FIFO PATH.out.
#
# Exit status: the guest's <rc>; 124 if QEMU did not exit within the
# timeout (even if the guest printed its line: a hang at power-off is a
# failure too); 125 if the line never appeared or Linux reported that it
# could not unpack the initrd; 2 on a usage error.
set -euo pipefail

usage() {
	sed -n '5,9s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
die() { printf 'run-guest: %s\n' "$*" >&2; exit 2; }

kernel="" initrd="" script="" memory=256 smp=1 timeout=120 qemu=qemu-system-x86_64
logfile="" append="console=ttyS0 panic=-1 quiet" hostch=""
while [ $# -gt 0 ]; do
	case $1 in
	--kernel | --initrd | --script | --memory | --smp | --timeout | --qemu | --log | \
		--append | --host-channel)
		[ $# -ge 2 ] || die "$1 needs an argument"
		case $1 in
		--kernel) kernel=$2 ;;
		--initrd) initrd=$2 ;;
		--script) script=$2 ;;
		--memory) memory=$2 ;;
		--smp) smp=$2 ;;
		--timeout) timeout=$2 ;;
		--qemu) qemu=$2 ;;
		--log) logfile=$2 ;;
		--append) append=$2 ;;
		--host-channel) hostch=$2 ;;
		esac
		shift 2 ;;
	--) shift; break ;;
	-h | --help) usage ;;
	*) die "unknown argument: $1 (extra QEMU args go after --)" ;;
	esac
done
extra=("$@")
if [ -n "$hostch" ]; then
	for f in "$hostch.in" "$hostch.out"; do
		[ -p "$f" ] || mkfifo "$f" || die "cannot make the FIFO $f"
	done
	# The second -serial is the guest's ttyS1; QEMU opens both FIFOs
	# read-write, so neither side blocks opening them.
	# shellcheck disable=SC2054 # commas are QEMU option syntax
	extra=(-chardev "pipe,id=viodhost,path=$hostch" -serial chardev:viodhost "${extra[@]}")
fi

if [ -z "$kernel" ] || [ -z "$initrd" ]; then
	usage
fi
[ -r "$kernel" ] || die "cannot read kernel $kernel"
[ -r "$initrd" ] || die "cannot read initrd $initrd"
[ -z "$script" ] || [ -r "$script" ] || die "cannot read script $script"
[[ $memory =~ ^[1-9][0-9]*$ ]] || die "--memory wants megabytes, got $memory"
[[ $smp =~ ^[1-9][0-9]*$ ]] || die "--smp wants a CPU count, got $smp"
[[ $timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout wants seconds, got $timeout"
command -v "$qemu" >/dev/null || die "$qemu not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-run-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [ -n "$script" ]; then
	# The kernel finds an uncompressed cpio after a previous archive only at
	# a 4-byte aligned offset; NUL padding between archives is skipped.
	mkdir "$tmp/s"
	cp "$script" "$tmp/s/test.sh"
	chmod 0755 "$tmp/s/test.sh"
	cp "$initrd" "$tmp/initrd"
	size=$(stat -c %s "$tmp/initrd")
	pad=$(((4 - size % 4) % 4))
	if [ "$pad" -gt 0 ]; then
		head -c "$pad" /dev/zero >>"$tmp/initrd"
	fi
	(cd "$tmp/s" && printf 'test.sh\n' | cpio -o -H newc -R 0:0 --quiet) >>"$tmp/initrd"
	initrd=$tmp/initrd
fi

# shellcheck disable=SC2054 # commas are QEMU option syntax
cmd=("$qemu" -accel tcg -smp "$smp" -m "$memory" -nographic -no-reboot -nodefaults
	-serial stdio
	-object "memory-backend-memfd,id=mem,size=${memory}M,share=on"
	-machine q35,memory-backend=mem
	-kernel "$kernel" -initrd "$initrd" -append "$append"
	"${extra[@]}")
printf 'run-guest: %s\n' "${cmd[*]}" >&2

# stdin is /dev/null so QEMU never puts a terminal in raw mode; firmware's
# terminal resets (ESC c, ESC [ ... letter) are dropped with the CRs.
set +e
timeout -k 5 "$timeout" "${cmd[@]}" </dev/null 2>&1 |
	sed -u -E $'s/\r//g; s/\x1b(c|\\[[0-9;?]*[A-Za-z])//g' | tee "$tmp/console"
qst=${PIPESTATUS[0]}
set -e
if [ -n "$logfile" ]; then
	cp "$tmp/console" "$logfile"
fi

line=$(grep -aoE 'VIOD-GUEST-EXIT [0-9]+' "$tmp/console" | tail -n 1 || true)
if [ "$qst" -eq 124 ] || [ "$qst" -eq 137 ]; then
	printf 'run-guest: timed out after %s s (%s)\n' "$timeout" \
		"${line:-no VIOD-GUEST-EXIT line}" >&2
	exit 124
fi
# Linux then boots without (part of) the initrd, e.g. without /test.sh.
if grep -aq 'Initramfs unpacking failed' "$tmp/console"; then
	printf 'run-guest: the kernel could not unpack the initrd\n' >&2
	exit 125
fi
if [ -z "$line" ]; then
	printf 'run-guest: no VIOD-GUEST-EXIT line; QEMU exited with %s\n' "$qst" >&2
	exit 125
fi
rc=${line#VIOD-GUEST-EXIT }
[ "$qst" -eq 0 ] || printf 'run-guest: QEMU exited with %s after the guest finished\n' "$qst" >&2
exit $((rc > 255 ? 255 : rc))
