# Redis for the queue on Postgres + Redis: a throw-away server on a free loopback port with its
# data in $SERVICES_DIR/redis (appendonly, as production should run it; no RDB snapshots). Never
# a Redis that is already running. Tests give each app its own queue name, so they share it.
# SAFEREACH_TEST_REDIS_SERVER is the binary, for tests that start (and stop) their own.
PACKAGES+=(redis-server)
STARTERS+=(start_redis)

start_redis() {
  local dir="$SERVICES_DIR/redis" port
  port=$(free_port)
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes --save '' \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  wait_for_port "$port" 30 || { cat "$dir/redis.log" >&2; return 1; }
  on_exit "kill \$(cat '$dir/redis.pid') 2>/dev/null"
  export SAFEREACH_TEST_REDIS_URL="redis://127.0.0.1:$port"
  SAFEREACH_TEST_REDIS_SERVER=$(command -v redis-server)
  export SAFEREACH_TEST_REDIS_SERVER
  echo "test.sh: Redis at $SAFEREACH_TEST_REDIS_URL"
}
