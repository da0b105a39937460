#!/bin/sh
# bearerbox, then smsbox, then (for a trial) a fakesmsc client that takes what is "sent"; the
# container stops when bearerbox does.
set -e
# safereach's token for Kannel's callbacks goes into the configuration's get-url (never baked
# into the image). Its characters are letters, digits and - . _ ~ (safereach refuses others).
if grep -q '@SAFEREACH_KANNEL_WEBHOOK_TOKEN@' /etc/kannel/kannel.conf; then
  : "${SAFEREACH_KANNEL_WEBHOOK_TOKEN:?set SAFEREACH_KANNEL_WEBHOOK_TOKEN}"
  sed -i "s/@SAFEREACH_KANNEL_WEBHOOK_TOKEN@/$SAFEREACH_KANNEL_WEBHOOK_TOKEN/" /etc/kannel/kannel.conf
fi
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
