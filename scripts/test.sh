#!/usr/bin/env bash
# The whole test suite on a fresh machine or an already set-up one: installs the Debian packages
# the tests need (when missing), starts the servers they use on loopback, runs the tests, and
# stops what it started. Idempotent; works as root or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- packages --------------------------------------------------------------------------------
PACKAGES=(poppler-utils)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "test.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- tests -----------------------------------------------------------------------------------
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast "$@"
fi
