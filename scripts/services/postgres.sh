# Postgres 15 for the store's tests on Postgres and the black-box tests on Postgres + Redis.
# Two throw-away clusters under $SERVICES_DIR on free loopback ports (never a system cluster):
#   main   SAFEREACH_TEST_POSTGRES_URL: tests create a uniquely named database each on it
#   spare  SAFEREACH_TEST_POSTGRES_SPARE_URL: the health test stops and restarts it with
#          SAFEREACH_TEST_POSTGRES_SPARE_CTL (start|stop), so that nobody else's test is disturbed
# Postgres refuses to run as root: as root the clusters belong to the `postgres` user the
# package creates and every server command runs through runuser.
PACKAGES+=(postgresql)
STARTERS+=(start_postgres)

# Run a Postgres command as the cluster's owner.
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_cluster NAME: initialise and start a cluster in $SERVICES_DIR/postgres-NAME, registering
# its stop; sets PG_CLUSTER_URL. (Not a command substitution: on_exit must run in this shell.)
pg_cluster() {
  local name=$1 dir="$SERVICES_DIR/postgres-$1" bin port
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  port=$(free_port)
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
  pg_as_owner "$bin/initdb" -D "$dir/data" -U safereach --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  # Tests only: durability of the test cluster itself does not matter, speed does.
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 400
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  # The control script a test uses to stop and restart this cluster.
  cat >"$dir/ctl" <<CTL
#!/usr/bin/env bash
# $name test cluster: ctl start|stop
set -e
as_owner() { if [ "\$(id -u)" -eq 0 ]; then runuser -u postgres -- "\$@"; else "\$@"; fi; }
case "\$1" in
  start) as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ;;
  stop) as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ;;
  *) echo "usage: \$0 start|stop" >&2; exit 2 ;;
esac
CTL
  chmod 755 "$dir/ctl"
  "$dir/ctl" start || { cat "$dir/server.log" >&2; return 1; }
  on_exit "'$dir/ctl' stop"
  PG_CLUSTER_URL="postgres://safereach@127.0.0.1:$port/postgres"
}

start_postgres() {
  pg_cluster main
  SAFEREACH_TEST_POSTGRES_URL=$PG_CLUSTER_URL
  pg_cluster spare
  SAFEREACH_TEST_POSTGRES_SPARE_URL=$PG_CLUSTER_URL
  SAFEREACH_TEST_POSTGRES_SPARE_CTL="$SERVICES_DIR/postgres-spare/ctl"
  export SAFEREACH_TEST_POSTGRES_URL SAFEREACH_TEST_POSTGRES_SPARE_URL SAFEREACH_TEST_POSTGRES_SPARE_CTL
  echo "test.sh: Postgres at $SAFEREACH_TEST_POSTGRES_URL (spare at $SAFEREACH_TEST_POSTGRES_SPARE_URL)"
}
