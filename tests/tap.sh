# Sourced, not run: TAP output for the shell tests. ok/not_ok print one
# numbered result and count failures; check DESC CMD... is ok when CMD
# succeeds; tap_end prints the plan and returns 1 if anything failed.
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { local desc=$1; shift; if "$@"; then ok "$desc"; else not_ok "$desc"; fi; }
tap_end() { echo "1..$n"; [ "$fails" -eq 0 ]; }
