#!/usr/bin/env bash
# The benchmark (see BENCHMARKS.md): builds the binary, starts Kannel with its fake SMSC,
# Postgres and Redis on loopback the way scripts/test.sh does, and runs `safereach bench`, which
# starts the gateway as separate processes on fresh databases and drives it over HTTP. It prints a
# progress line on stderr, a table on stdout, and writes target/bench/results.json.
#   scripts/bench.sh [--debug] [--smoke] [other `safereach bench` options]
#     --debug  use a debug build (as the test suite does) instead of a release build
#     --smoke  tiny sizes: checks that every phase works (figures meaningless)
# A full run takes about 5 minutes on a 2-core machine once the release build is there.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

PROFILE=release
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --debug) PROFILE=debug ;;
    *) ARGS+=("$arg") ;;
  esac
done

PACKAGES=()
STARTERS=()
for service in kannel postgres redis; do
  # shellcheck source=/dev/null
  source "scripts/services/$service.sh"
done
install_packages "${PACKAGES[@]}"
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin safereach
else
  cargo build --quiet --bin safereach
fi

SERVICES_DIR=$(mktemp -d /tmp/safereach-bench.XXXXXX)
chmod 755 "$SERVICES_DIR"
export SERVICES_DIR
on_exit "rm -rf '$SERVICES_DIR'"
trap run_cleanups EXIT
for start in "${STARTERS[@]}"; do
  "$start" >&2
done

SAFEREACH_BENCH_COMMAND="scripts/bench.sh $*" \
  SAFEREACH_KANNEL_SENDSMS_URL="$SAFEREACH_TEST_KANNEL_SENDSMS_URL" \
  SAFEREACH_KANNEL_USER="$SAFEREACH_TEST_KANNEL_USER" \
  SAFEREACH_KANNEL_PASSWORD="$SAFEREACH_TEST_KANNEL_PASSWORD" \
  SAFEREACH_BENCH_KANNEL_MT_LOG="$SAFEREACH_TEST_KANNEL_MT_LOG" \
  SAFEREACH_BENCH_POSTGRES_URL="$SAFEREACH_TEST_POSTGRES_URL" \
  SAFEREACH_REDIS_URL="$SAFEREACH_TEST_REDIS_URL" \
  "target/$PROFILE/safereach" bench "${ARGS[@]}"
