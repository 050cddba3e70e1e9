#!/bin/sh
# rundir-check.sh RUNDIR UNIT - the run-dir protocol's checker in POSIX sh,
# for images with a shell but no healthbridge (seed 002's three checks):
#   1. <rundir>/<unit>/pid holds a number;
#   2. /proc/<pid> exists and is not a zombie;
#   3. <rundir>/<unit>/error holds 0.
# Exit 0 healthy, 1 unhealthy with one line of reason on stderr, 2 usage.
# Set RUNDIR_CHECK_NO_PID=1 to skip check 2 (no shared PID namespace).
set -u
if [ $# -ne 2 ]; then
  echo "usage: $0 RUNDIR UNIT" >&2
  exit 2
fi
dir="$1/$2"
fail() { echo "unhealthy: $dir: $*" >&2; exit 1; }

[ -f "$dir/pid" ] || fail "not started: $dir/pid does not exist"
pid=$(cat "$dir/pid" 2>/dev/null) || fail "cannot read $dir/pid"
case "$pid" in
  ''|*[!0-9]*) fail "pid file holds '$pid', not a number" ;;
esac
if [ "${RUNDIR_CHECK_NO_PID:-0}" != 1 ]; then
  [ -d "/proc/$pid" ] || fail "process $pid is not running"
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
  [ "$state" != Z ] || fail "process $pid is a zombie (exited, not yet reaped)"
fi
[ -f "$dir/error" ] || fail "no state set yet: $dir/error does not exist"
code=$(cat "$dir/error" 2>/dev/null) || fail "cannot read $dir/error"
case "$code" in
  ''|*[!0-9-]*) fail "error file holds '$code', not a number" ;;
esac
[ "$code" = 0 ] || fail "unhealthy: error code $code"
exit 0
