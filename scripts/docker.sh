# A Docker engine and the images the conformance suite's testcontainers provisioner runs
# (docker/): sourced by scripts/test after scripts/services.sh (it uses apt_install and
# MOTO_VERSION from there).
#
# `start_docker` uses the engine `docker info` reaches; when there is none it installs Debian's
# docker.io if missing and starts `dockerd` itself (no iptables changes: builds use the host's
# network, published ports docker-proxy). `stop_docker` stops only an engine this shell started.
# `build_images` builds every image here (this machine has no image registry): a base of the
# host's distribution, then PostgreSQL, Redis, moto and the server (from the cargo build the
# tests just ran, stripped). Docker's layer cache keeps them: a warm machine rebuilds only what
# changed.

FLIPBOOK_IMAGE_BASE="${FLIPBOOK_IMAGE_BASE:-flipbook-test/base:host}"
docker_started=0

start_docker() {
  if docker info >/dev/null 2>&1; then
    echo "Docker: using the running engine ($(docker info --format '{{.ServerVersion}}'))"
    return
  fi
  command -v dockerd >/dev/null || apt_install docker.io
  local dir="$FLIPBOOK_SERVICES/docker"
  mkdir -p "$dir"
  dockerd --iptables=false --ip-forward=false --pidfile "$dir/dockerd.pid" >"$dir/dockerd.log" 2>&1 &
  docker_started=1
  for _ in $(seq 300); do
    docker info >/dev/null 2>&1 && break
    sleep 0.1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not start; its log:" >&2
    tail -n 20 "$dir/dockerd.log" >&2
    return 1
  fi
  echo "Docker: started dockerd $(docker info --format '{{.ServerVersion}}') (log: $dir/dockerd.log)"
}

stop_docker() {
  [ "$docker_started" = 1 ] || return 0
  local pidfile="$FLIPBOOK_SERVICES/docker/dockerd.pid"
  if [ -f "$pidfile" ]; then
    local pid
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  ip link del docker0 2>/dev/null || true
  docker_started=0
}

# The base of every image: the host's own distribution (the server's binary links the host's C
# library), once per machine (docker keeps it). Pulled where a registry answers; else made with
# debootstrap from the host's apt mirror (Debian hosts), with the host's apt, pip and CA
# configuration so that builds reach the package registries the way the host does.
build_base_image() {
  docker image inspect "$FLIPBOOK_IMAGE_BASE" >/dev/null 2>&1 && return
  local id version codename pullable
  read -r id version codename < <(. /etc/os-release; echo "$ID ${VERSION_ID:-} ${VERSION_CODENAME:-}")
  case "$id" in
    debian) pullable="debian:$codename-slim" ;;
    *) pullable="$id:$version" ;;
  esac
  if docker pull -q "$pullable" >/dev/null 2>&1; then
    docker tag "$pullable" "$FLIPBOOK_IMAGE_BASE"
    echo "Docker: the base image is $pullable"
    return
  fi
  if [ "$id" != debian ]; then
    echo "Docker: cannot pull $pullable and this host is not Debian (no debootstrap base)" >&2
    return 1
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  local root mirror
  root="$(mktemp -d /tmp/flipbook-base.XXXXXX)"
  # The mirror the host's apt uses (deb822 sources or a sources.list line).
  mirror="$(grep -hoE '^URIs: *[^ ]+|^deb +[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -v security | head -n 1 | awk '{print $2}')" || true
  debootstrap --variant=minbase "$codename" "$root" "${mirror:-http://deb.debian.org/debian}" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; return 1; }
  cp -a /etc/apt/apt.conf.d/. "$root/etc/apt/apt.conf.d/"
  rm -f "$root/etc/apt/sources.list"
  cp -a /etc/apt/sources.list.d/. "$root/etc/apt/sources.list.d/"
  [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/"
  mkdir -p "$root/etc/ssl/certs" "$root/usr/local/share/ca-certificates"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/"
  rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
  tar -C "$root" -c . | docker import - "$FLIPBOOK_IMAGE_BASE" >/dev/null
  rm -rf "$root" "$root.log"
  echo "Docker: built the base image $FLIPBOOK_IMAGE_BASE with debootstrap ($codename)"
}

# docker build on the host's network, FROM the local base; its output only when it fails.
docker_build() {
  local log
  log="$(mktemp /tmp/flipbook-docker-build.XXXXXX)"
  if ! docker build --network host --build-arg "BASE=$FLIPBOOK_IMAGE_BASE" "$@" >"$log" 2>&1; then
    echo "docker build $* failed:" >&2
    tail -n 30 "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

# build_images SERVER_BINARY: the backends' images and the server's, tagged
# flipbook-test/{postgres,redis,dynamodb}:test and flipbook/server:test (what the conformance
# runner starts).
build_images() {
  local binary="$1" context
  build_base_image
  docker_build -t flipbook-test/postgres:test docker/postgres
  docker_build -t flipbook-test/redis:test docker/redis
  docker_build --build-arg "MOTO_VERSION=$MOTO_VERSION" -t flipbook-test/dynamodb:test -f docker/dynamodb/Dockerfile .
  context="$(mktemp -d /tmp/flipbook-server-image.XXXXXX)"
  strip -o "$context/flipbook" "$binary"
  docker_build -t flipbook/server:test -f docker/server/Dockerfile "$context"
  rm -rf "$context"
  # The images these tags named before this build, now untagged.
  docker image prune -f --filter label=io.flipbook.image >/dev/null
  echo "Docker: images built: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
    | grep -E '^flipbook(-test)?/' | grep -v ':host ' | tr '\n' ',' | sed 's/,$//; s/,/, /g')"
}

# What the issue promises of the server's image: under 100 MB, an unprivileged user, and a
# HEALTHCHECK (flipbook health) that reports it healthy once it serves.
check_server_image() {
  local image=flipbook/server:test size user id status
  size="$(docker image inspect --format '{{.Size}}' "$image")"
  user="$(docker image inspect --format '{{.Config.User}}' "$image")"
  if [ "$size" -ge 100000000 ]; then
    echo "$image is $size bytes, over 100 MB" >&2
    return 1
  fi
  case "$user" in
    "" | root | 0 | 0:*) echo "$image runs as root (USER '$user')" >&2; return 1 ;;
  esac
  id="$(docker run -d --rm "$image" 2>/dev/null)"
  for _ in $(seq 300); do
    status="$(docker inspect --format '{{.State.Health.Status}}' "$id")"
    [ "$status" = healthy ] && break
    sleep 0.1
  done
  docker rm -f "$id" >/dev/null
  if [ "$status" != healthy ]; then
    echo "$image did not become healthy within 30 s (health: $status)" >&2
    return 1
  fi
  echo "Docker: $image is $((size / 1000000)) MB, runs as $user, and reports healthy"
}
