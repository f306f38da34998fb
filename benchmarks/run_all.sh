#!/usr/bin/env bash
# Run the benchmarks in order: page weight (browser), render time (in process),
# start-up and memory of `kiosk demo`, recovery under faults; then their budget lines together.
# Arguments (only --strict is understood by all three) go to each of them.
# Exit status: 0 when all ran (and, with --strict, met their budgets); otherwise the
# highest status of the three (1 = a budget missed with --strict, 2 = could not measure).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
# The project's Python: $PYTHON, else the active virtualenv's, else python3.
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -n "${VIRTUAL_ENV:-}" ]; then python="$VIRTUAL_ENV/bin/python"; else python=python3; fi
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
status=0
for bench in page_weight render memory faults; do
  echo "=== $bench ==="
  "$python" "$here/$bench.py" "$@" 2>&1 | tee -a "$out"
  rc=${PIPESTATUS[0]}
  [ "$rc" -ne 0 ] && echo "($bench exited with $rc)" | tee -a "$out"
  [ "$rc" -gt "$status" ] && status=$rc
  echo
done

echo "=== budgets ==="
grep -E -e '-> (PASS|FAIL)$' -e 'could not' -e 'exited with' "$out"
exit "$status"
