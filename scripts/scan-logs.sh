#!/usr/bin/env bash
# The whole suite's log scan: every app the tests start (in the test process or as the binary)
# logs under SAFEREACH_TEST_LOG_DIR (set by scripts/test.sh); none of those logs may carry any of
# the test data's personal values (tests/fixtures/personal-data.txt). Prints what it scanned and,
# for a hit, the file and the value (never the line). Usage: scan-logs.sh DIR [--require-logs]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
patterns=$(mktemp)
trap 'rm -f "$patterns"' EXIT
grep -v -e '^#' -e '^$' tests/fixtures/personal-data.txt >"$patterns"
files=$(find "$dir" -type f -name '*.log' | wc -l)
bytes=$(find "$dir" -type f -name '*.log' -exec cat {} + 2>/dev/null | wc -c)
echo "log scan: $files log files, $bytes bytes, $(wc -l <"$patterns") personal values"
if [[ ${2:-} == --require-logs && $files -lt 50 ]]; then
  echo "log scan: FAIL: only $files log files: the apps did not log where the scan looks" >&2
  exit 1
fi
# Values made of digits only (a number's national form) count only where they start a number:
# not inside a longer run of digits or after a decimal point, where a 10-minute soak's millions of
# timestamps and durations (`1.077009001s`) hold any 8 digits by chance.
digits=$(grep -E '^[0-9]+$' "$patterns" | paste -sd'|' || true)
words=$(mktemp)
trap 'rm -f "$patterns" "$words"' EXIT
grep -vE '^[0-9]+$' "$patterns" >"$words" || true
hits=$(
  {
    grep -rFoH -f "$words" --include='*.log' "$dir" || true
    [[ -z $digits ]] || grep -rPoH "(?<![0-9.])($digits)" --include='*.log' "$dir" || true
  } | sort | uniq -c
)
if [[ -n $hits ]]; then
  echo "log scan: FAIL: personal data in the logs (count file:value):" >&2
  echo "$hits" | head -n 40 >&2
  exit 1
fi
echo "log scan: no personal data found"
