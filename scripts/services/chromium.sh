# Headless Chromium for the staff-page tests, driven through chromedriver (WebDriver). The tests
# start one browser per test with a fresh profile; this starts only the driver.
PACKAGES+=(chromium chromium-driver)
STARTERS+=(start_chromedriver)

start_chromedriver() {
  local port
  port=$(free_port)
  # Only local clients may connect (chromedriver's default), on a port nothing else uses.
  chromedriver --port="$port" --allowed-ips=127.0.0.1 >"$SERVICES_DIR/chromedriver.log" 2>&1 &
  local pid=$!
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  wait_for_port "$port"
  export SAFEREACH_TEST_WEBDRIVER_URL="http://127.0.0.1:$port"
  echo "test.sh: chromedriver on port $port"
}
