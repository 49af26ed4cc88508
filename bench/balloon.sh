#!/usr/bin/env bash
# The same Linux guest and balloon target, once with QEMU's built-in
# virtio-balloon (QMP `balloon`) and once with viod's balloon (balloonctl
# set --wait) behind QEMU's generic vhost-user-test-device-pci (or
# vhost-user-device-pci; tools/qemu-generic-device.sh), in one run: seconds until the
# guest's balloon reaches the target, and host memory actually freed (bytes
# QEMU's guest-RAM memfd stops holding), with the ratios viod/QEMU.
# Usage: bench/balloon.sh [BUILD_DIR] [GUEST_MB] [BALLOON_MB]
# Environment: VIOD_GUEST_ARGS, extra guest kernel arguments for both runs
# (e.g. init_on_alloc=0: Debian's kernel zeroes every page it allocates,
# balloon pages included, which under TCG dominates both runs);
# VIOD_BALLOON_OPTS, viod's balloon options (default: the features QEMU's
# built-in balloon offers by default, no reporting or deflate-on-oom, so
# both guests do the same work; viod adds MUST_TELL_HOST, which Linux's
# driver honours either way); VIOD_BENCH_ROUNDS (default
# 3), alternating QEMU and viod runs whose medians are reported.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
guest_mb=${2:-1024}
balloon_mb=${3:-512}
pages=$((balloon_mb * 256))
fill=$((guest_mb * 7 / 10))
qemu=$("$top/tools/build-qemu.sh" | tail -n 1)
generic=$("$top/tools/qemu-generic-device.sh" "$qemu") || exit 2
guest=$("$top/tools/guest/build-guest.sh" | tail -n 1)
for b in "$build/viod" "$build/tools/balloonctl"; do
	[ -x "$b" ] || { echo "bench: $b missing: build first" >&2; exit 2; }
done

tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; cat "$tmp"/run-*.log >&2 2>/dev/null; rm -rf "$tmp"' EXIT

memfd_bytes() { "$top/tools/guest/qemu-memfd.sh" "$1"; }

# run NAME MARK QEMU-ARGS...: boots the guest, calls inflate_NAME at READY.
run() {
	local name=$1 mark=$2 line t0 t1 a0 a1
	shift 2
	while IFS= read -r line; do
		case $line in
		BENCH-READY*)
			a0=$(memfd_bytes "$mark")
			secs=$("inflate_$name")
			a1=$(memfd_bytes "$mark")
			echo "$name $secs $((a0 - a1))" >>"$tmp/results"
			;;
		esac
	done < <("$top/tools/guest/run-guest.sh" --qemu "$qemu" --memory "$guest_mb" \
		--timeout 600 --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" \
		--script "$top/bench/balloon-guest.sh" \
		--append "console=ttyS0 panic=-1 quiet viod.pages=$pages viod.fill=$fill ${VIOD_GUEST_ARGS:-}" \
		-- "$@" 2>"$tmp/run-$name.log")
}

# Each prints the seconds from the new target to the guest reaching it, as
# timed by one long-lived client (no process start-up inside the interval).
inflate_qemu() {
	"$top/bench/qmp.py" "$tmp/qmp.sock" --balloon-wait $(((guest_mb - balloon_mb) * 1048576))
}

inflate_viod() {
	"$build/tools/balloonctl" --socket "$tmp/control" --json set b0 "$pages" \
		--wait --timeout 600 | sed -n 's/.*"seconds" *: *\([0-9.e+-]*\).*/\1/p'
}

"$build/viod" --control "$tmp/control" --device "balloon,id=b0,socket=$tmp/b0.sock,${VIOD_BALLOON_OPTS:-reporting=off,deflate-on-oom=off}" \
	2>"$tmp/viod.log" &
pid=$!
for _ in $(seq 100); do [ -S "$tmp/control" ] && break; sleep 0.05; done
for _ in $(seq "${VIOD_BENCH_ROUNDS:-3}"); do
	run qemu "qmp.sock" -device virtio-balloon-pci,id=bal0 \
		-qmp "unix:$tmp/qmp.sock,server=on,wait=off"
	run viod "$tmp/b0.sock" -chardev "socket,id=c0,path=$tmp/b0.sock" \
		-device "$generic,virtio-id=5,num_vqs=4,config_size=16,chardev=c0"
	# The target outlives a connection (a reconnecting QEMU keeps its
	# guest's balloon); the next guest must start from none.
	"$build/tools/balloonctl" --socket "$tmp/control" set b0 0 >/dev/null
done

printf 'guest %d MiB, balloon target %d MiB (%d pages), TCG, guest args: %s\n' \
	"$guest_mb" "$balloon_mb" "$pages" "${VIOD_GUEST_ARGS:-none}"
printf '%-22s %9s %14s %12s\n' balloon seconds "host freed MiB" "freed MiB/s"
sort -k1,1 -k2,2n "$tmp/results" | awk '
	{ secs[$1, ++n[$1]] = $2; freed[$1, n[$1]] = $3 }
	function med(name, a,   k) { k = int((n[name] + 1) / 2); return a[name, k] }
	END {
		for (name in n) {
			s[name] = med(name, secs)
			# freed at the median time (pairs kept together by the sort)
			f[name] = freed[name, int((n[name] + 1) / 2)]
			printf "%-22s %9.2f %14.1f %12.1f   (%d runs, median)\n", name, s[name],
				f[name] / 1048576, f[name] / 1048576 / s[name], n[name]
			all = ""
			for (k = 1; k <= n[name]; k++)
				all = all sprintf(" %.3f", secs[name, k])
			runs[name] = all
		}
		for (name in n)
			printf "%-22s every run, sorted (s):%s\n", name, runs[name]
		printf "viod vs QEMU: %.2fx faster to reach the target, %.2fx the freeing rate\n",
			s["qemu"] / s["viod"], (f["viod"] / s["viod"]) / (f["qemu"] / s["qemu"])
	}'
