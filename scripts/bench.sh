#!/usr/bin/env bash
# Benchmarks (not part of the test suite): builds a release binary, starts Kannel with a fake
# SMSC (and Postgres + Redis when their service scripts are here) as scripts/test.sh does, and
# runs `safereach bench` on each backend. Every figure is printed beside a baseline measured in
# the same run: raw single-row inserts into the same database, and Kannel's own sendsms rate.
#   scripts/bench.sh [--jobs N] [--concurrency C]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

PACKAGES=()
STARTERS=()
for service in kannel postgres redis; do
  [ -f "scripts/services/$service.sh" ] && source "scripts/services/$service.sh"
done
install_packages "${PACKAGES[@]}"
cargo build --release --quiet

SERVICES_DIR=$(mktemp -d /tmp/safereach-bench.XXXXXX)
chmod 755 "$SERVICES_DIR"
export SERVICES_DIR
on_exit "rm -rf '$SERVICES_DIR'"
trap run_cleanups EXIT
for start in "${STARTERS[@]}"; do
  "$start"
done

bench() { env "$@" target/release/safereach bench "${BENCH_ARGS[@]}"; echo; }
BENCH_ARGS=("$@")
KANNEL=(SAFEREACH_SMS_PROVIDER=kannel
  SAFEREACH_KANNEL_SENDSMS_URL="$SAFEREACH_TEST_KANNEL_SENDSMS_URL"
  SAFEREACH_KANNEL_USER="$SAFEREACH_TEST_KANNEL_USER"
  SAFEREACH_KANNEL_PASSWORD="$SAFEREACH_TEST_KANNEL_PASSWORD"
  SAFEREACH_KANNEL_FROM=60000
  SAFEREACH_KANNEL_WEBHOOK_TOKEN="$SAFEREACH_TEST_KANNEL_WEBHOOK_TOKEN")
# Postgres keeps no secrets: the hash key and the sandbox's token are given (32 random bytes each).
secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

bench SAFEREACH_SMS_PROVIDER=sandbox
bench "${KANNEL[@]}"
if [ -n "${SAFEREACH_TEST_POSTGRES_URL:-}" ] && [ -n "${SAFEREACH_TEST_REDIS_URL:-}" ]; then
  bench "${KANNEL[@]}" SAFEREACH_DATABASE_URL="$SAFEREACH_TEST_POSTGRES_URL" SAFEREACH_REDIS_URL="$SAFEREACH_TEST_REDIS_URL" \
    SAFEREACH_HASH_KEY="$(secret)" SAFEREACH_SANDBOX_WEBHOOK_TOKEN="$(secret)"
fi
