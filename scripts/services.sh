# Backing services for the tests, as local processes: sourced by scripts/test. PostgreSQL, Redis
# (durable: appendfsync always), a three-node Redis Cluster and a DynamoDB emulator (moto).
#
# Each `start_*` installs its Debian package when missing, starts a throwaway instance on a
# private port under $FLIPBOOK_SERVICES (a temp dir), and exports the URL the tests read. When
# a FLIPBOOK_TEST_*_URL variable is already set (a managed service, a container), nothing is
# started and the tests use it. `stop_services` stops what this shell started and removes its
# files, and nothing else: FLIPBOOK_SERVICES may be a directory other runs share.

if [ -z "${FLIPBOOK_SERVICES:-}" ]; then
  FLIPBOOK_SERVICES="$(mktemp -d /tmp/flipbook-services.XXXXXX)"
  services_dir_made=1
fi
mkdir -p "$FLIPBOOK_SERVICES"
chmod 755 "$FLIPBOOK_SERVICES"
apt_updated=0
# The directories of the services this shell started (each holds the pid file, if any).
started_dirs=()

apt_install() {
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if ! sudo -n true 2>/dev/null; then
      echo "need root (or sudo) to install: $*" >&2
      return 1
    fi
    sudo=(sudo -n)
  fi
  if [ "$apt_updated" = 0 ]; then
    "${sudo[@]}" apt-get update -qq
    apt_updated=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
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
  # UTF8 whatever the locale: a bare environment (no LANG) would make it SQL_ASCII, and psycopg
  # then hands text back as bytes (the Python benchmark's eventsourcing fails on it).
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1
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
  pg_started=1
  started_dirs+=("$dir")
  export FLIPBOOK_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL: $("$bin/postgres" --version), $FLIPBOOK_TEST_POSTGRES_URL"
}

start_redis() {
  if [ -n "${FLIPBOOK_TEST_REDIS_URL:-}" ]; then
    echo "Redis: using $FLIPBOOK_TEST_REDIS_URL"
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  local dir="$FLIPBOOK_SERVICES/redis" port=56379
  mkdir -p "$dir"
  # Durable as Flipbook asks of an event store: every write fsynced before it is acknowledged.
  # FLIPBOOK_REDIS_START / _STOP: what the outage tests run to take it away and back.
  export FLIPBOOK_REDIS_START="redis-server --daemonize yes --port $port --bind 127.0.0.1 --dir $dir --save '' \
    --appendonly yes --appendfsync always --pidfile $dir/redis.pid --logfile $dir/redis.log"
  export FLIPBOOK_REDIS_STOP="redis-cli -p $port shutdown"
  sh -c "$FLIPBOOK_REDIS_START"
  started_dirs+=("$dir")
  wait_for_redis "$port"
  export FLIPBOOK_TEST_REDIS_URL="redis://127.0.0.1:$port/"
  echo "Redis: $(redis-server --version | cut -d' ' -f3), $FLIPBOOK_TEST_REDIS_URL"
}

start_redis_cluster() {
  if [ -n "${FLIPBOOK_TEST_REDIS_CLUSTER_URLS:-}" ]; then
    echo "Redis Cluster: using $FLIPBOOK_TEST_REDIS_CLUSTER_URLS"
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  local urls=() nodes=() port
  for port in 47001 47002 47003; do  # the cluster bus listens on port + 10000
    local dir="$FLIPBOOK_SERVICES/redis-cluster-$port"
    mkdir -p "$dir"
    redis-server --daemonize yes --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    started_dirs+=("$dir")
    wait_for_redis "$port"
    nodes+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port/")
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$FLIPBOOK_SERVICES/redis-cluster-47001/cluster-create.log"
  for _ in $(seq 100); do
    redis-cli -p 47001 cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  export FLIPBOOK_TEST_REDIS_CLUSTER_URLS="${urls[*]}"
  echo "Redis Cluster: $FLIPBOOK_TEST_REDIS_CLUSTER_URLS"
}

# moto's DynamoDB emulator in a virtualenv of its own (FLIPBOOK_MOTO_VENV, default
# ~/.cache/flipbook/moto-venv), served by scripts/moto_serial.py: one request at a time, so a
# transaction is atomic as on DynamoDB (see that file). AWS's DynamoDB Local is not used (its
# licence). Dummy credentials, unless some are set: moto accepts any.
MOTO_VERSION=5.2.1
start_dynamodb() {
  if [ -n "${FLIPBOOK_TEST_DYNAMODB_URL:-}" ]; then
    echo "DynamoDB: using $FLIPBOOK_TEST_DYNAMODB_URL"
    return
  fi
  local venv="${FLIPBOOK_MOTO_VENV:-$HOME/.cache/flipbook/moto-venv}" port="${FLIPBOOK_DYNAMODB_PORT:-58000}"
  local dir="$FLIPBOOK_SERVICES/dynamodb"
  mkdir -p "$dir"
  if ! "$venv/bin/python" -c "import moto, flask, flask_cors; assert moto.__version__ == '$MOTO_VERSION'" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q "moto[server]==$MOTO_VERSION"
  fi
  nohup "$venv/bin/python" scripts/moto_serial.py --port "$port" >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  started_dirs+=("$dir")
  # FLIPBOOK_DYNAMODB_STOP / _START: what the outage tests run to take it away and back. moto
  # keeps its tables in memory, so it is paused rather than stopped: calls then hang until the
  # client's timeouts end them, the harder case.
  export FLIPBOOK_DYNAMODB_STOP="kill -STOP $!" FLIPBOOK_DYNAMODB_START="kill -CONT $!"
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  export FLIPBOOK_TEST_DYNAMODB_URL="http://127.0.0.1:$port"
  echo "DynamoDB: moto $MOTO_VERSION, $FLIPBOOK_TEST_DYNAMODB_URL"
}

wait_for_redis() {
  for _ in $(seq 100); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "redis on port $1 did not start" >&2
  return 1
}

stop_services() {
  local dir pidfile
  for dir in "${started_dirs[@]}"; do
    for pidfile in "$dir"/moto.pid "$dir"/redis.pid; do
      [ -f "$pidfile" ] || continue
      kill -CONT "$(cat "$pidfile")" 2>/dev/null || true  # if an outage test paused it
      kill "$(cat "$pidfile")" 2>/dev/null || true
    done
  done
  if [ "${pg_started:-0}" = 1 ]; then
    $FLIPBOOK_PG_CTL -m immediate stop >/dev/null 2>&1 || true
  fi
  for dir in "${started_dirs[@]}"; do
    rm -rf "$dir"
  done
  if [ "${services_dir_made:-0}" = 1 ]; then
    rm -rf "$FLIPBOOK_SERVICES"
  fi
}
