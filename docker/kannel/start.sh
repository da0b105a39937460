#!/bin/sh
# bearerbox, then smsbox, then (for a trial) a fakesmsc client that takes what is "sent"; the
# container stops when bearerbox does.
set -e
# safereach's token for Kannel's callbacks and the trial's passwords go into the configuration
# (never baked into the image). Their characters are letters, digits and - . _ ~ (safereach
# refuses others in the token; `openssl rand -hex 32` gives hex).
for var in SAFEREACH_KANNEL_WEBHOOK_TOKEN SAFEREACH_KANNEL_PASSWORD KANNEL_ADMIN_PASSWORD; do
  if grep -q "@$var@" /etc/kannel/kannel.conf; then
    value=$(printenv "$var") || { echo "set $var" >&2; exit 1; }
    case $value in *[!A-Za-z0-9._~-]*|'') echo "$var: use letters, digits and - . _ ~ only" >&2; exit 1 ;; esac
    sed -i "s/@$var@/$value/" /etc/kannel/kannel.conf
  fi
done
/usr/sbin/bearerbox /etc/kannel/kannel.conf &
bearerbox=$!
sleep 2
/usr/sbin/smsbox /etc/kannel/kannel.conf &
if [ "$FAKE_SMSC" = "yes" ]; then
  sleep 1
  # Logs every message it receives ("Got message …") to the container's output.
  /usr/lib/kannel/test/fakesmsc -H 127.0.0.1 -r 10000 -m 1 "0 0 route nobody start" &
fi
wait "$bearerbox"
