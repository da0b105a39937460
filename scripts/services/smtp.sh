# A real SMTP server (aiosmtpd) for the SMTP provider tests: see smtp_sink.py. It writes what it
# receives to $SAFEREACH_TEST_SMTP_DIR; recipients named reject…@ get 550, defer…@ get 451, and a
# message to slow…@ is stored but answered only after 5 s.
PACKAGES+=(python3-aiosmtpd)
STARTERS+=(start_smtp)

start_smtp() {
  local dir="$SERVICES_DIR/smtp" port
  mkdir -p "$dir/mail"
  port=$(free_port)
  # Debian's interpreter: python3-aiosmtpd installs for it (another python3 may come first on PATH).
  /usr/bin/python3 scripts/services/smtp_sink.py "$port" "$dir/mail" >"$dir/smtp.log" 2>&1 &
  local pid=$!
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  wait_for_port "$port"
  export SAFEREACH_TEST_SMTP_URL="smtp://127.0.0.1:$port" SAFEREACH_TEST_SMTP_DIR="$dir/mail"
  echo "test.sh: SMTP sink on 127.0.0.1:$port"
}
