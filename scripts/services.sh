# Backing services for the tests, as local processes: sourced by scripts/test.
#
# Each `start_*` installs its Debian package when missing, starts a throwaway instance on a
# private port under $FLIPBOOK_SERVICES (a temp dir), and exports the URL the tests read. When
# a FLIPBOOK_TEST_*_URL variable is already set (a managed service, a container), nothing is
# started and the tests use it. `stop_services` stops what was started.

FLIPBOOK_SERVICES="${FLIPBOOK_SERVICES:-$(mktemp -d /tmp/flipbook-services.XXXXXX)}"
chmod 755 "$FLIPBOOK_SERVICES"
apt_updated=0

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "need root (or sudo) to install: $*" >&2
    return 1
  fi
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_postgres() {
  if [ -n "${FLIPBOOK_TEST_POSTGRES_URL:-}" ]; then
    echo "PostgreSQL: using $FLIPBOOK_TEST_POSTGRES_URL"
    return
  fi
  [ -n "$(pg_bin)" ] || apt_install postgresql
  local bin dir port=55432 as=()
  bin="$(pg_bin)"
  dir="$FLIPBOOK_SERVICES/postgres"
  mkdir -p "$dir"
  # PostgreSQL refuses to run as root: run it as the postgres user the package created.
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
  # Settings in the file, so a plain `pg_ctl start` (the outage tests restart it) keeps them.
  cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 300
CONF
  # FLIPBOOK_PG_CTL: what tests run, with "stop" or "start" appended, to take it away and back.
  export FLIPBOOK_PG_CTL="${as[*]} $bin/pg_ctl -D $dir/data -l $dir/server.log -w"
  $FLIPBOOK_PG_CTL start >/dev/null
  export FLIPBOOK_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL: $("$bin/postgres" --version), $FLIPBOOK_TEST_POSTGRES_URL"
}

stop_services() {
  if [ -n "${FLIPBOOK_PG_CTL:-}" ]; then
    $FLIPBOOK_PG_CTL -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$FLIPBOOK_SERVICES"
}
