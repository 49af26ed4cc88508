# Sourced, not run: drives DPDK's testpmd (22.11) in interactive mode, for
# the net interop test (testpmd-viod.sh) and bench/net.sh.
#
# Each testpmd reads its commands from a FIFO that this shell holds open
# (so it never sees EOF while we need it) and writes a line-buffered log
# (stdbuf -oL: testpmd's printf output to a file is otherwise fully
# buffered and comes out of order with the prompt). Counters are read by
# sending a command and waiting, with a deadline, for the block it prints:
#   show port stats all -> "NIC statistics for port": what the PMD
#     counted (RX/TX packets and bytes), testpmd keeps forwarding;
#   stop -> "Accumulated forward statistics": what the forwarding engine
#     counted; the port stays up (no disconnect), so a vhost-user back end
#     still drains the rings after it.
# testpmd's counters are only known once printed: a SIGINT'd testpmd
# exits before a file-buffered stdout is flushed, and one whose stdin
# ends (a non-interactive run on /dev/null) quits right after starting.
#
# The sourcing script sets `dir` (a private scratch directory). Every
# testpmd gets --file-prefix viod-PID-NAME (DPDK's runtime directory and
# memory files, which pmd_cleanup removes), so runs never collide.
#
# pmd_start NAME FWD_CPU VDEVS [TESTPMD_ARG...]: starts testpmd on lcores
#   0,1 with its forwarding lcore on CPU FWD_CPU (the main lcore, idle in
#   the prompt, on the other), no hugepages, --auto-start, one port per
#   vdev in VDEVS (separated by white space, so no socket path may hold
#   any); 0 once its prompt is up (30 s at most).
# pmd_nic NAME / pmd_stop NAME: print "RX_PACKETS TX_PACKETS RX_BYTES
#   TX_BYTES" (bytes 0 where testpmd prints none), 1 on timeout; pmd_nic
#   reads the last port's block (pmd_block reads the others' after it).
# pmd_quit NAME: quit, or kill after 10 s. pmd_cleanup: kill what is left.
# within SECONDS CMD...: CMD every 50 ms until it succeeds, 1 after the
#   deadline.
# reap PID [SIGNAL]: sends SIGNAL (default TERM, "-" none) to a child of
#   this shell, SIGKILL if it still runs 10 s later, and waits for it.

TESTPMD=${TESTPMD:-dpdk-testpmd}
declare -A pmd_pid=() pmd_fd=()
pmd_names=()
pmd_prefix=viod-$$

now_us() { echo "${EPOCHREALTIME//[.,]/}"; }

within() {
	local end=$(($(now_us) + $1 * 1000000))

	shift
	until "$@"; do
		[ "$(now_us)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

reap() {
	local pid=$1 sig=${2:-TERM}

	[ -n "$pid" ] || return 0
	if [ "$sig" != - ]; then kill "-$sig" "$pid" 2>/dev/null || true; fi
	if ! within 10 eval "! alive $pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	wait "$pid" 2>/dev/null || true
}

pmd_alive() { alive "${pmd_pid[$1]:-}"; }

pmd_start() {
	local name=$1 cpu=$2 vdevs=() vl v fd

	read -ra vl <<<"$3"
	for v in "${vl[@]}"; do vdevs+=(--vdev "$v"); done
	shift 3
	rm -f "$dir/$name.in"
	mkfifo "$dir/$name.in" || return 1
	exec {fd}<>"$dir/$name.in"
	pmd_fd[$name]=$fd
	pmd_names+=("$name")
	stdbuf -oL "$TESTPMD" -l 0,1 --main-lcore $((1 - cpu)) --no-pci --no-huge -m 512 \
		--file-prefix="$pmd_prefix-$name" "${vdevs[@]}" -- -i --no-mlockall \
		--total-num-mbufs=8192 --auto-start "$@" \
		<"$dir/$name.in" >"$dir/$name.log" 2>&1 {fd}>&- &
	pmd_pid[$name]=$!
	# A testpmd that exits ends the wait at once.
	within 30 eval "pmd_prompt $name || ! pmd_alive $name"
	pmd_alive "$name" && pmd_prompt "$name"
}

pmd_prompt() { grep -q 'testpmd> ' "$dir/$1.log" 2>/dev/null; }

pmd_cmd() { echo "$2" >&"${pmd_fd[$1]}"; }

# pmd_block LOG HEADER: "COUNT RXP TXP RXB TXB" for the last block that
# starts with HEADER; TXP is "-" while that block is incomplete.
pmd_block() {
	awk -v h="$2" '
		index($0, h) { n++; rx = rb = tb = 0; tx = "-"; inb = 1; next }
		inb && /RX-packets:/ { rx = $2; if ($5 == "RX-bytes:") rb = $6 }
		inb && /TX-packets:/ { tx = $2; if ($5 == "TX-bytes:") tb = $6; inb = 0 }
		END { printf "%d %.0f %s %.0f %.0f\n", n, rx, tx, rb, tb }' "$1"
}

# A block past COUNT is complete.
pmd_block_after() {
	local c tx

	read -r c _ tx _ _ < <(pmd_block "$1" "$2")
	[ "$c" -gt "$3" ] && [ "$tx" != - ]
}

# pmd_query NAME COMMAND HEADER
pmd_query() {
	local log=$dir/$1.log c rx tx rb tb

	read -r c _ _ _ _ < <(pmd_block "$log" "$3")
	pmd_cmd "$1" "$2"
	within 10 pmd_block_after "$log" "$3" "$c" || return 1
	read -r _ rx tx rb tb < <(pmd_block "$log" "$3")
	echo "$rx $tx $rb $tb"
}

pmd_nic() { pmd_query "$1" "show port stats all" "NIC statistics for port"; }
pmd_stop() { pmd_query "$1" stop "Accumulated forward statistics"; }

pmd_quit() {
	local fd=${pmd_fd[$1]:-}

	[ -n "$fd" ] || return 0
	pmd_cmd "$1" quit
	exec {fd}>&-
	unset "pmd_fd[$1]"
	reap "${pmd_pid[$1]}" -
	unset "pmd_pid[$1]"
}

pmd_cleanup() {
	local name rundir=/var/run/dpdk

	[ "$(id -u)" -eq 0 ] || rundir=${XDG_RUNTIME_DIR:-/tmp}/dpdk
	for name in "${!pmd_pid[@]}"; do
		reap "${pmd_pid[$name]}"
	done
	pmd_pid=()
	for name in "${pmd_names[@]}"; do
		rm -rf "${rundir:?}/$pmd_prefix-$name"
	done
}
