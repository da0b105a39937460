# Kannel (bearerbox + smsbox) with two fake SMSCs, for the Kannel provider tests:
# - "mt": messages we send go here; a fakesmsc client stays connected and writes each one it
#   receives to $SAFEREACH_TEST_KANNEL_MT_LOG. Kannel's fake SMSC answers with
#   real delivery reports (8 "submitted", then 1 "delivered") to the dlr-url we give.
# - "mo": tests inject replies with `fakesmsc -r $SAFEREACH_TEST_KANNEL_MO_PORT -m 1 "FROM TO text …"`.
#   The sms-service get-url sends them to 127.0.0.1:%P, so the receiver number of an injected
#   reply names the port of the test app that should get it (each test runs its own app).
# Started as plain processes under $SERVICES_DIR, never as the system service.
PACKAGES+=(kannel kannel-extras)
STARTERS+=(start_kannel)

start_kannel() {
  local dir="$SERVICES_DIR/kannel"
  mkdir -p "$dir"
  local admin smsbox sendsms mt mo
  admin=$(free_port) smsbox=$(free_port) sendsms=$(free_port) mt=$(free_port) mo=$(free_port)
  local user=safereach password token
  password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  # 32 random bytes: safereach refuses a shorter webhook token.
  token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  cat >"$dir/kannel.conf" <<EOF
group = core
admin-port = $admin
admin-interface = 127.0.0.1
admin-password = $password
admin-allow-ip = 127.0.0.1
smsbox-port = $smsbox
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
dlr-storage = internal
log-file = "$dir/bearerbox.log"
log-level = 1

group = smsc
smsc = fake
smsc-id = mt
port = $mt
connect-allow-ip = 127.0.0.1

group = smsc
smsc = fake
smsc-id = mo
port = $mo
connect-allow-ip = 127.0.0.1
allowed-smsc-id = mo

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = $smsbox
sendsms-port = $sendsms
sendsms-interface = 127.0.0.1
mo-recode = true
log-file = "$dir/smsbox.log"
log-level = 1

group = sendsms-user
username = $user
password = $password
user-allow-ip = 127.0.0.1
forced-smsc = mt
concatenation = true
max-messages = 6

group = sms-service
keyword = default
catch-all = true
max-messages = 0
omit-empty = true
get-url = "http://127.0.0.1:%P/webhooks/kannel/inbound?token=$token&from=%p&to=%P&text=%a&ts=%t"
EOF
  /usr/sbin/bearerbox "$dir/kannel.conf" >"$dir/bearerbox.out" 2>&1 &
  local bearerbox=$!
  on_exit "kill $bearerbox 2>/dev/null; wait $bearerbox 2>/dev/null"
  wait_for_port "$smsbox"
  /usr/sbin/smsbox "$dir/kannel.conf" >"$dir/smsbox.out" 2>&1 &
  local smsbox_pid=$!
  on_exit "kill $smsbox_pid 2>/dev/null; wait $smsbox_pid 2>/dev/null"
  wait_for_port "$sendsms"
  wait_for_port "$mt"
  # fakesmsc sends -m messages, then logs each message it gets ("Got message N: <from to type
  # data>") on stderr until it is stopped. Its one message is routed to an smsbox that does not
  # exist, so bearerbox drops it.
  /usr/lib/kannel/test/fakesmsc -H 127.0.0.1 -r "$mt" -m 1 "0 0 route nobody start" >/dev/null 2>"$dir/mt.log" &
  local fakesmsc=$!
  on_exit "kill $fakesmsc 2>/dev/null; wait $fakesmsc 2>/dev/null"
  export SAFEREACH_TEST_KANNEL_SENDSMS_URL="http://127.0.0.1:$sendsms/cgi-bin/sendsms"
  export SAFEREACH_TEST_KANNEL_USER=$user SAFEREACH_TEST_KANNEL_PASSWORD=$password
  export SAFEREACH_TEST_KANNEL_WEBHOOK_TOKEN=$token
  export SAFEREACH_TEST_KANNEL_MT_LOG="$dir/mt.log" SAFEREACH_TEST_KANNEL_MO_PORT=$mo
  export SAFEREACH_TEST_KANNEL_FAKESMSC=/usr/lib/kannel/test/fakesmsc
  echo "test.sh: kannel sendsms on 127.0.0.1:$sendsms, fake SMSCs on $mt (mt) and $mo (mo)"
}
