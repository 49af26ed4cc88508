#!/usr/bin/env bash
# virtio-blk through viod against qemu-storage-daemon's vhost-user-blk
# export, in one run, with the ld reference driver (vioguest blk bench) as
# the client: 4 KiB random reads and writes at queue depth 1 and 32, on
# 1 and 4 queues, for a file image (both back ends with O_DIRECT and
# io_uring) and for a zero-cost back end (viod's backend=null, qsd's
# null-co). qsd runs its export in an iothread, which polls (its
# poll-max-ns default), as viod's workers do: its best configuration. Prints IOPS, p50/p99 latency and each back end's CPU time per
# request, and viod/qsd ratios.
#
# Usage: bench/blk.sh [BUILD_DIR]
# Environment:
#   BENCH_SECONDS   per run (default 3)
#   BENCH_IMAGE_MB  image size (default 1024)
#   BENCH_WORKERS   viod's workers (default 1: on 2 CPUs the client takes
#                   the other)
#   BENCH_DIR       where the image lives (default under /var/tmp: not
#                   tmpfs, so O_DIRECT works)
#   BENCH_BACKENDS  "file null"
#   BENCH_ROUNDS    rounds of every run (default 1), alternating which back
#                   end goes first; each figure is then the median of its
#                   rounds, since a shared or virtual disk's rate and tail
#                   latency swing between runs seconds apart
#   BENCH_BACKEND_CPUS, BENCH_CLIENT_CPUS
#                   taskset lists for each back end (every thread) and for
#                   the client (default: none, the scheduler places them).
#                   Pinning trades one risk for another here: left alone, a
#                   polling back end and the client it waits on can share
#                   a CPU, each spin holding the other off; pinned to one
#                   CPU, a back end shares it with its own io_uring worker
#                   threads (ext4 hands the writes that would block on a
#                   timestamp update to them, about 1 in 6 at QD32).
# Targets: at QD32 viod >= 1.3x qsd's IOPS; at QD1 viod's p99 <= qsd's.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
secs=${BENCH_SECONDS:-3}
image_mb=${BENCH_IMAGE_MB:-1024}
workers=${BENCH_WORKERS:-1}
backends=${BENCH_BACKENDS:-file null}
rounds=${BENCH_ROUNDS:-1}
if [ "$(nproc)" -ge 2 ]; then
	be_cpus=${BENCH_BACKEND_CPUS-}
	cl_cpus=${BENCH_CLIENT_CPUS-}
else
	be_cpus="" cl_cpus=""
fi
be_pin=() cl_pin=()
[ -n "$be_cpus" ] && be_pin=(taskset -c "$be_cpus")
[ -n "$cl_cpus" ] && cl_pin=(taskset -c "$cl_cpus")
qsd=${QSD:-qemu-storage-daemon}
viod=$build/viod
vioguest=$build/tools/vioguest
for b in "$viod" "$vioguest"; do
	[ -x "$b" ] || { echo "bench: build first (meson setup build && ninja -C build): $b" >&2; exit 2; }
done
command -v "$qsd" >/dev/null || { echo "bench: $qsd not found (tools/install-deps.sh)" >&2; exit 2; }

tmp=$(mktemp -d "${BENCH_DIR:-/var/tmp}/viod-bench-blk.XXXXXX")
pid=""
stop() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	pid=""
}
trap 'stop; rm -rf "$tmp"' EXIT
img=$tmp/disk.img
sock=$tmp/blk.sock
hz=$(getconf CLK_TCK)

echo "bench: writing a ${image_mb} MiB image (real blocks, so O_DIRECT reads hit the disk's data)" >&2
dd if=/dev/urandom of="$img" bs=1M count="$image_mb" status=none conv=fsync

# start KIND BACKEND: one back end on $sock, 4 queues.
start() {
	rm -f "$sock"
	case $1/$2 in
	viod/file)
		"${be_pin[@]}" "$viod" --device "blk,id=d0,socket=$sock,path=$img,num-queues=4,workers=$workers,direct=on" \
			>"$tmp/server.log" 2>&1 & ;;
	viod/null)
		"${be_pin[@]}" "$viod" --device "blk,id=d0,socket=$sock,backend=null,size=${image_mb}M,num-queues=4,workers=$workers" \
			>"$tmp/server.log" 2>&1 & ;;
	qsd/file)
		"${be_pin[@]}" "$qsd" --object iothread,id=io0 \
			--blockdev "file,filename=$img,node-name=d0,cache.direct=on,aio=io_uring" \
			--export "vhost-user-blk,id=e0,node-name=d0,iothread=io0,addr.type=unix,addr.path=$sock,writable=on,num-queues=4" \
			>"$tmp/server.log" 2>&1 & ;;
	qsd/null)
		"${be_pin[@]}" "$qsd" --object iothread,id=io0 \
			--blockdev "null-co,node-name=d0,size=$((image_mb << 20)),read-zeroes=off" \
			--export "vhost-user-blk,id=e0,node-name=d0,iothread=io0,addr.type=unix,addr.path=$sock,writable=on,num-queues=4" \
			>"$tmp/server.log" 2>&1 & ;;
	esac
	pid=$!
	for _ in $(seq 200); do
		[ -S "$sock" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "bench: $1 ($2) did not start:" >&2
	cat "$tmp/server.log" >&2
	exit 1
}

# CPU ticks (user + system, all threads) of $pid.
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }

# run RW QD QUEUES: one measurement; prints "iops p50 p99 cpu_us_per_request".
run() {
	local t0 t1 line
	# A second's warm-up, not counted (fio's ramp_time): the rate right
	# after a different pattern (the page cache behind a virtual disk
	# refilling after a read-heavy run) is not this pattern's.
	"${cl_pin[@]}" "$vioguest" --socket "$sock" blk bench --rw "$1" --bs 4096 --qd "$2" \
		--queues "$3" --seconds 1 >/dev/null
	t0=$(ticks)
	line=$("${cl_pin[@]}" "$vioguest" --socket "$sock" blk bench --rw "$1" --bs 4096 --qd "$2" --queues "$3" \
		--seconds "$secs")
	t1=$(ticks)
	awk -v l="$line" -v dt=$((t1 - t0)) -v hz="$hz" 'BEGIN {
		n = split(l, f, " ")
		for (i = 1; i <= n; i++) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
		printf "%d %.1f %.1f %.2f\n", v["iops"], v["p50_us"], v["p99_us"],
			(v["requests"] > 0 ? dt / hz * 1e6 / v["requests"] : 0)
	}'
}

declare -A res
for round in $(seq "$rounds"); do
	order="viod qsd"
	[ $((round % 2)) -eq 0 ] && order="qsd viod"
	for be in $backends; do
		for srv in $order; do
			start "$srv" "$be"
			for rw in randread randwrite; do
				for q in 1 4; do
					for qd in 1 32; do
						res[$be/$srv/$rw/$q/$qd/$round]=$(run "$rw" "$qd" "$q")
					done
				done
			done
			stop
		done
	done
done

# median KEY: each figure of KEY (IOPS, p50, p99, CPU) the median of its
# rounds, so one round that met a disk stall moves no figure.
median() {
	local r f out=""

	for f in 1 2 3 4; do
		out+="$(for r in $(seq "$rounds"); do echo "${res[$1/$r]}"; done |
			awk -v f="$f" '{ print $f }' | sort -g |
			awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }') "
	done
	echo "$out"
}

printf '\n4 KiB random I/O, ld driver, %s s per run, median of %s round(s), viod workers=%s (%s CPUs; back end on CPU %s, client on CPU %s)\n' \
	"$secs" "$rounds" "$workers" "$(nproc)" "${be_cpus:-any}" "${cl_cpus:-any}"
printf '%-5s %-9s %2s %3s | %9s %8s %8s %7s | %9s %8s %8s %7s | %6s %6s\n' \
	backend rw q qd "viod IOPS" p50us p99us cpu/req "qsd IOPS" p50us p99us cpu/req iops× p99×
for be in $backends; do
	for rw in randread randwrite; do
		for q in 1 4; do
			for qd in 1 32; do
				read -r vi v50 v99 vc <<<"$(median "$be/viod/$rw/$q/$qd")"
				read -r qi q50 q99 qc <<<"$(median "$be/qsd/$rw/$q/$qd")"
				awk -v be="$be" -v rw="$rw" -v q="$q" -v qd="$qd" -v vi="$vi" -v v50="$v50" \
					-v v99="$v99" -v vc="$vc" -v qi="$qi" -v q50="$q50" -v q99="$q99" -v qc="$qc" 'BEGIN {
					printf "%-5s %-9s %2d %3d | %9d %8.1f %8.1f %7.2f | %9d %8.1f %8.1f %7.2f | %5.2fx %5.2fx\n",
						be, rw, q, qd, vi, v50, v99, vc, qi, q50, q99, qc,
						(qi > 0 ? vi / qi : 0), (v99 > 0 ? q99 / v99 : 0)
				}'
			done
		done
	done
done
echo "iops×: viod/qsd IOPS (target >= 1.3 at QD32); p99×: qsd p99 / viod p99 (target >= 1 at QD1); cpu/req: back end CPU microseconds per request"
