# Sourced, not run: the checks any virtio-blk back-end must pass under the
# ld reference driver (vioguest blk), whoever serves the socket
# (qemu-storage-daemon in ld-qsd.sh; viod's blk device later). Only what
# the spec promises is asserted, plus what a file-backed disk shows on
# the host (written bytes, zeroes after write-zeroes and, where the
# back-end punches holes, after discard).
#
# The sourcing script sets `vioguest` (the binary) and `dir` (a scratch
# directory), defines ok/not_ok (TAP lines, counting failures) and may
# define backend_restart: stop the back-end and start it again on the
# same image and socket, 0 once the socket accepts again.
#
# ld_checks SOCKET IMAGE QUEUES [DISCARD_ZEROES]
#   IMAGE: the raw image file behind the disk (read with dd), 64 MiB at
#   least, 512-byte blocks.
#   QUEUES: the num_queues the back-end was configured with.
#   DISCARD_ZEROES: 1 if discarded sectors read back as zeroes on the
#   host (a raw file with hole punching), 0 to skip that check.

# ld_run NAME ARGS...: vioguest --socket $ld_sock ARGS; stdout in $dir/out,
# stderr in $dir/err, status in $rc; ok when it exits 0.
ld_run() {
	local name=$1
	shift
	"$vioguest" --socket "$ld_sock" "$@" >"$dir/out" 2>"$dir/err"
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "$name"
	else
		not_ok "$name (exit $rc)"
		sed 's/^/# /' "$dir/err"
	fi
}

# ld_field KEY: the value of KEY=... in $dir/out.
ld_field() { sed -n "s/^$1=//p" "$dir/out"; }

# ld_check NAME COMMAND...: ok when COMMAND succeeds.
ld_check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# Conditions for ld_check.
ld_set() { [ -n "$1" ] && [ "$1" != - ]; }
ld_positive() { [ -n "$1" ] && [ "$1" -gt 0 ] 2>/dev/null; }
ld_pow2_sector() { ld_positive "$1" && [ "$1" -ge 512 ] && [ $(($1 & ($1 - 1))) -eq 0 ]; }

# ld_host_range SECTOR COUNT: those sectors of the image, from the host.
ld_host_range() {
	dd if="$ld_img" bs=512 skip="$1" count="$2" status=none
}

# ld_host_zero SECTOR COUNT: whether the image holds zeroes there.
ld_host_zero() {
	ld_host_range "$1" "$2" | cmp -s - <(head -c $(($2 * 512)) /dev/zero)
}

# ld_refused NAME ARGS...: vioguest ARGS must fail at run time (exit 1)
# with one line on stderr, matching the extended regex in $ld_want.
ld_refused() {
	local name=$1 lines
	shift
	"$vioguest" --socket "$ld_sock" "$@" >"$dir/out" 2>"$dir/err"
	rc=$?
	lines=$(wc -l <"$dir/err")
	if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -Eq "^vioguest: .*$ld_want" "$dir/err"; then
		ok "$name"
	else
		not_ok "$name (exit $rc, $lines lines)"
		sed 's/^/# /' "$dir/err"
	fi
}

ld_checks() {
	ld_sock=$1 ld_img=$2
	local queues=$3 discard_zeroes=${4:-1}
	local cap last line s

	# ---- attach and config ----
	ld_run "blk info" blk info
	cap=$(ld_field capacity)
	if [ -n "$cap" ] && [ "$cap" -eq $(($(stat -c %s "$ld_img") / 512)) ]; then
		ok "capacity $cap sectors is the image's size"
	else
		not_ok "capacity is the image's size (got '${cap:-nothing}')"
		sed 's/^/# /' "$dir/out"
		return
	fi
	if [ "$cap" -lt 131072 ]; then
		not_ok "the image has 64 MiB at least (the ranges below need it)"
		return
	fi
	s=$(ld_field blk_size)
	ld_check "blk_size $s is a power of two >= 512" ld_pow2_sector "$s"
	if [ "$s" != 512 ]; then
		not_ok "blk_size is 512 (the ranges below are in 512-byte blocks)"
		return
	fi
	ld_check "num_queues is $queues" [ "$(ld_field num_queues)" = "$queues" ]
	s=$(ld_field serial)
	ld_check "serial from GET_ID is not empty ('$s')" ld_set "$s"
	ld_run "blk info with --queues $queues" blk info --queues "$queues"
	ld_check "$queues queues in use" [ "$(ld_field queues)" = "$queues" ]
	ld_run "blk get-id" blk get-id
	ld_check "get-id prints one line" [ "$(wc -l <"$dir/out")" -eq 1 ]
	ld_check "... the serial again" [ "$(cat "$dir/out")" = "$s" ]

	# ---- data: the pattern over several ranges, the last sectors too ----
	last=$((cap - 8))
	ld_run "verify 8 sectors at 0" blk verify --sector 0 --count 8 --seed 1
	ld_run "verify 1000 sectors at 12345 (unaligned, several requests)" \
		blk verify --sector 12345 --count 1000 --seed 2
	ld_run "verify 8192 sectors at 16384 (4 MiB, 32 requests)" \
		blk verify --sector 16384 --count 8192 --seed 3
	ld_run "verify the last 8 sectors" blk verify --sector "$last" --count 8 --seed 4
	ld_run "verify the last sector" blk verify --sector $((cap - 1)) --count 1 --seed 5
	ld_run "verify with data split in 4 KiB descriptors" \
		blk verify --sector 40000 --count 2048 --seed 6 --seg-size 4K
	ld_run "verify with 512-byte descriptors, one request in flight" \
		blk verify --sector 44000 --count 300 --seed 7 --seg-size 512 --qd 1
	ld_run "verify from guest memory in 4 regions" \
		--regions 4 --memory 16M blk verify --sector 50000 --count 1024 --seed 8
	ld_run "verify without EVENT_IDX" \
		--no-event-idx blk verify --sector 52000 --count 512 --seed 9
	ld_run "check: the pattern at 12345 reads back in a new connection" \
		blk verify --sector 12345 --count 1000 --seed 2 --check
	"$vioguest" --socket "$ld_sock" blk verify --sector 0 --count 8 --seed 99 \
		--check >"$dir/out" 2>"$dir/err"
	ld_check "check: a wrong seed is told apart (exit 1)" [ $? -eq 1 ]

	# ---- data: what the guest wrote is what the host file holds ----
	head -c $((1536 * 512)) /dev/urandom >"$dir/data" || return
	ld_run "write 1536 sectors of random data at 60000" \
		blk write --sector 60000 --count 1536 --in "$dir/data"
	ld_check "the image holds those bytes" \
		cmp -s <(ld_host_range 60000 1536) "$dir/data"
	ld_run "read them back" blk read --sector 60000 --count 1536 --out "$dir/back"
	ld_check "read back equals written" cmp -s "$dir/back" "$dir/data"
	head -c 4096 /dev/urandom >"$dir/tail" || return
	ld_run "write the last 8 sectors" blk write --sector "$last" --count 8 --in "$dir/tail"
	ld_check "the image's last 4 KiB hold them" cmp -s <(ld_host_range "$last" 8) "$dir/tail"
	ld_run "flush" blk flush

	# ---- discard and write-zeroes ----
	ld_run "write the pattern at 70000 for discard" \
		blk write --sector 70000 --count 2048 --pattern 10
	ld_run "discard 2048 sectors at 70000" blk discard --sector 70000 --count 2048
	if [ "$discard_zeroes" = 1 ]; then
		ld_check "discarded sectors read as zeroes on the host" ld_host_zero 70000 2048
	fi
	ld_run "write the pattern at 74000 for write-zeroes" \
		blk write --sector 74000 --count 4096 --pattern 11
	ld_run "write-zeroes 2048 sectors at 74000" \
		blk write-zeroes --sector 74000 --count 2048
	ld_run "write-zeroes --unmap 2048 sectors at 76048" \
		blk write-zeroes --sector 76048 --count 2048 --unmap
	ld_check "written-zero sectors read as zeroes on the host" ld_host_zero 74000 4096
	ld_run "the guest reads them as zeroes too" \
		blk read --sector 74000 --count 4096 --out "$dir/z"
	ld_check "... all 2 MiB" cmp -s "$dir/z" <(head -c $((4096 * 512)) /dev/zero)
	ld_run "write-zeroes over the last sectors" \
		blk write-zeroes --sector "$last" --count 8
	ld_check "the image's last 4 KiB are zeroes" ld_host_zero "$last" 8

	# ---- the driver refuses what is past the disk ----
	ld_want="past the capacity"
	ld_refused "read at the capacity refused by the driver" \
		blk read --sector "$cap" --count 1
	ld_refused "read across the end refused by the driver" \
		blk read --sector $((cap - 1)) --count 2
	ld_refused "write across the end refused by the driver" \
		blk write --sector "$last" --count 16 --pattern 1
	ld_refused "discard across the end refused by the driver" \
		blk discard --sector "$last" --count 16

	# ---- the back-end refuses bad requests (sent raw) ----
	ld_run "raw read at the capacity" blk raw --type in --sector "$cap" --in-len 512
	ld_check "... the back-end answers IOERR" [ "$(ld_field status)" = 1 ]
	ld_run "raw read across the end" blk raw --type in --sector "$last" --in-len 8192
	ld_check "... the back-end answers IOERR" [ "$(ld_field status)" = 1 ]
	ld_run "raw request of an unknown type" blk raw --type 99
	ld_check "... the back-end answers UNSUPP" [ "$(ld_field status)" = 2 ]
	ld_run "raw discard with the unmap flag" \
		blk raw --type discard --seg-sector 0 --seg-count 8 --seg-flags 1
	ld_check "... the back-end answers UNSUPP (5.2.6.2)" [ "$(ld_field status)" = 2 ]
	ld_run "the device still serves after refusing" \
		blk verify --sector 8 --count 64 --seed 12

	# ---- throughput mode (no timing asserted) ----
	for args in "--rw randread --qd 1" "--rw randread --qd 32 --queues $queues" \
		"--rw randwrite --qd 32 --queues $queues"; do
		# shellcheck disable=SC2086
		ld_run "bench $args" blk bench $args --seconds 1 --region-mb 16
		line=$(cat "$dir/out")
		echo "# $line"
		ld_check "bench $args: a result line with requests > 0" \
			ld_positive "$(echo "$line" | sed -n 's/^iops=.* requests=\([0-9]*\) .*/\1/p')"
	done

	# ---- data survives a back-end restart ----
	if command -v backend_restart >/dev/null; then
		ld_run "verify the pattern at 90000" blk verify --sector 90000 --count 512 --seed 13
		if backend_restart; then
			ok "back-end restarted on the same image"
			ld_run "check: the pattern at 90000 survived the restart" \
				blk verify --sector 90000 --count 512 --seed 13 --check
			ld_check "the random data at 60000 survived too" \
				cmp -s <(ld_host_range 60000 1536) "$dir/data"
		else
			not_ok "back-end restarted on the same image"
		fi
	fi
}
