#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what the
# tests need, builds viod twice (gcc with warnings as errors; clang with
# address,undefined sanitizers and the libFuzzer targets), runs `meson test`
# in both builds, runs each fuzzer for a bounded time, and ends with one
# line: "N passed, N failed, N skipped" (N counts meson tests and fuzz runs).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
fuzz_seconds=${VIOD_FUZZ_SECONDS:-30}

bash tools/install-deps.sh || { echo "test: dependency install failed" >&2; exit 1; }

passed=0 failed=0 skipped=0

# QEMU rebuilt with the project's patches (tools/qemu-patches), cached
# outside the clone: the reconnect and generic-device guest tests need it;
# the other guest tests run on the distribution's QEMU.
if VIOD_PATCHED_QEMU=$(tools/build-qemu.sh | tail -n 1) && [ -x "$VIOD_PATCHED_QEMU" ]; then
	export VIOD_PATCHED_QEMU
else
	echo "test: building the patched QEMU failed" >&2
	failed=$((failed + 1))
fi

setup() { # DIR [meson options...]
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@"
	fi
}

count_results() { # DIR: adds the meson test results to the totals
	local counts
	counts=$(python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result", "")
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
PY
	) || counts="0 1 0"
	read -r p f s <<<"$counts"
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

suite() { # DIR: build and test one configuration
	local dir=$1
	if ! ninja -C "$dir"; then
		echo "test: build in $dir failed" >&2
		failed=$((failed + 1))
		return
	fi
	meson test -C "$dir" --print-errorlogs --num-processes 2
	count_results "$dir"
}

if setup build -Dwerror=true -Dbuildtype=debugoptimized -Dlibvirt=enabled; then
	suite build
else
	failed=$((failed + 1))
fi

if CC=clang setup build-asan -Dwerror=true -Dbuildtype=debug -Db_sanitize=address,undefined -Dlibvirt=enabled \
	-Db_lundef=false -Dfuzzing=true; then
	suite build-asan
	# Bounded fuzzing on top of the seed replays meson already ran.
	for fz in build-asan/tests/fuzz_*; do
		case $fz in *_replay | *.p) continue ;; esac
		[ -x "$fz" ] || continue
		name=$(basename "$fz")
		corpus=$(mktemp -d)
		seeds="tests/fuzz/corpus/${name#fuzz_}"
		[ -d "$seeds" ] && cp -r "$seeds"/. "$corpus"/
		echo "fuzz: $name for ${fuzz_seconds}s"
		if "$fz" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
			-artifact_prefix="$corpus/" "$corpus" >"$corpus.log" 2>&1; then
			passed=$((passed + 1))
			grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$corpus.log" | tail -2
		else
			failed=$((failed + 1))
			echo "fuzz: $name FAILED; crash inputs kept in $corpus" >&2
			tail -40 "$corpus.log" >&2
			continue
		fi
		rm -rf "$corpus" "$corpus.log"
	done
else
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
