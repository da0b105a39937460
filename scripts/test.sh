#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an already set-up one: installs the Debian packages
# the tests need (only those missing), starts the servers they use on loopback ports in a
# temporary directory, runs the tests, and stops what it started. Idempotent; works as root or as
# a user with sudo.
#
# Each file in scripts/services/ adds to PACKAGES and may define a start function (added to
# STARTERS) that starts a server and exports the variables the tests read to find it
# (SAFEREACH_TEST_*). Tests that need a server fail when test.sh ran without giving it to them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

PACKAGES=()
STARTERS=()
for service in scripts/services/*.sh; do
  # shellcheck source=/dev/null
  source "$service"
done

install_packages "${PACKAGES[@]}"

SERVICES_DIR=$(mktemp -d /tmp/safereach-test.XXXXXX)
chmod 755 "$SERVICES_DIR"
export SERVICES_DIR
on_exit "rm -rf '$SERVICES_DIR'"
trap run_cleanups EXIT
for start in "${STARTERS[@]}"; do
  "$start"
done
export SAFEREACH_TEST_REQUIRE_SERVICES=1
# Every app the tests start logs here (tests/blackbox/common.rs); scanned for personal data below.
export SAFEREACH_TEST_LOG_DIR="$SERVICES_DIR/logs"
mkdir -p "$SAFEREACH_TEST_LOG_DIR"

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@" || status=$?
else
  cargo test --no-fail-fast "$@" || status=$?
fi
# The whole suite (no arguments) must have logged; a filtered run scans what it ran.
scripts/scan-logs.sh "$SAFEREACH_TEST_LOG_DIR" $([[ $# -eq 0 ]] && echo --require-logs) || status=1
exit "$status"
