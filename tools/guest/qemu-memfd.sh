#!/usr/bin/env bash
# Prints the bytes of host memory allocated to the guest RAM of the QEMU
# process whose command line contains PATTERN: the blocks of its
# memory-backend-memfd file ("/memfd:mem"), read through /proc/PID/fd.
# Only the QEMU process itself counts, not a timeout(1) wrapper with the
# same command line. Exit status 1 if there is no such QEMU or memfd.
# Usage: qemu-memfd.sh PATTERN
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 PATTERN" >&2; exit 2; }
for p in $(pgrep -f -- "$1"); do
	case $(readlink "/proc/$p/exe") in */qemu-system-*) ;; *) continue ;; esac
	for f in /proc/"$p"/fd/*; do
		case $(readlink "$f") in
		/memfd:mem*) echo $(($(stat -L -c %b "$f") * 512)); exit 0 ;;
		esac
	done
done
exit 1
