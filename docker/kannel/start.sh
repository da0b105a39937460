#!/bin/sh
# bearerbox, then smsbox, then (for a trial) a fakesmsc client that takes what is "sent"; the
# container stops when bearerbox does.
set -e
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
