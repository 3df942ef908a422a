# Shared helpers for scripts/run, scripts/test and scripts/bench: find or install PostgreSQL and Redis, and
# start/stop private instances on loopback. Sourced, not executed.

PG_MAJOR=${PG_MAJOR:-15}

log() { printf '\033[1m[wosool]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[wosool] error:\033[0m %s\n' "$*" >&2; exit 1; }

apt_install() {
  [ "$(id -u)" = 0 ] || die "$* missing and not running as root: install it (apt-get install $*)"
  command -v apt-get >/dev/null || die "$* missing and apt-get unavailable: install it by hand"
  log "installing $* with apt-get"
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Sets PG_BIN to a directory holding initdb/pg_ctl/postgres, installing PostgreSQL when none is present.
find_pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/"$PG_MAJOR"/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then PG_BIN=$dir; return; fi
  done
  apt_install "postgresql-$PG_MAJOR"
  PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL server binaries not found after install"
}

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-server >/dev/null || die "redis-server not found after install"
}

# PostgreSQL refuses to run as root: as root, run its binaries as the 'postgres' system user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_home DIR: the directory that really holds the cluster for DIR. Normally DIR itself. As root, the server
# runs as 'postgres', which cannot reach DIR when an ancestor is closed to it (a clone under /root, mode 700):
# then the cluster lives under /var/lib/wosool-pg/<hash of DIR> and DIR is a link to it, so the project's data
# folder still shows where it is and a second run finds it again.
pg_home() {
  local dir=$1 parent home
  if [ "$(id -u)" != 0 ]; then echo "$dir"; return; fi
  if [ -L "$dir" ]; then readlink -f "$dir"; return; fi
  parent=$(dirname "$dir")
  mkdir -p "$parent"
  if as_pg test -x "$parent" 2>/dev/null; then echo "$dir"; return; fi
  if [ -e "$dir/PG_VERSION" ]; then
    die "$dir holds a PostgreSQL cluster the 'postgres' user cannot reach (an ancestor directory is closed to it); move it or open the path (chmod o+x)"
  fi
  home=/var/lib/wosool-pg/$(printf '%s' "$dir" | sha256sum | cut -c1-16)
  mkdir -p "$home"
  rm -rf "$dir"
  ln -s "$home" "$dir"
  log "PostgreSQL data: the 'postgres' user cannot reach $parent, so the cluster lives in $home ($dir links to it)"
  echo "$home"
}

# wosool_bin: builds the wosool binary (cargo's progress on stderr) and prints its path as cargo reports it, so
# CARGO_TARGET_DIR, build.target-dir or a --target in cargo's config are all honoured. Run from the project root.
wosool_bin() {
  local out
  out=$(cargo build --bin wosool --message-format=json-render-diagnostics "$@" \
    2> >(grep --line-buffered -v '^ *Finished ' >&2)) || die "cargo build failed"
  printf '%s\n' "$out" | python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "wosool" and msg.get("executable"):
        print(msg["executable"])
        break
else:
    sys.exit("cargo did not report the wosool executable")
'
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_pg DATA_DIR PORT [extra postgres -c options...]: initialises the cluster on first use (superuser
# 'postgres', trust auth on loopback only) and starts it. Idempotent.
start_pg() {
  local data port=$2
  find_pg_bin
  data=$(pg_home "$1") || exit 1
  shift 2
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres "$data" 2>/dev/null
  chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$data.initdb.log" 2>&1 \
      || { cat "$data.initdb.log" >&2; die "initdb failed"; }
  fi
  if as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    return 0
  fi
  local opts="-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=300"
  for o in "$@"; do opts="$opts -c $o"; done
  as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -o "$opts" -w -t 60 start >/dev/null \
    || { tail -20 "$data/server.log" >&2; die "PostgreSQL did not start"; }
}

stop_pg() {
  local data=$1
  [ -n "${PG_BIN:-}" ] || find_pg_bin
  [ -L "$data" ] && data=$(readlink -f "$data")
  if [ -f "$data/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || log "PostgreSQL in $data did not stop cleanly"
  fi
  return 0
}

# start_redis DIR PORT: a loopback-only Redis with no persistence (it is never the only copy of anything).
start_redis() {
  local dir=$1 port=$2
  ensure_redis
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --maxmemory-policy noeviction --daemonize yes
  local i
  for i in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "Redis did not start (see $dir/redis.log)"
}

stop_redis() {
  local dir=$1
  if [ -f "$dir/redis.pid" ]; then
    kill "$(cat "$dir/redis.pid")" 2>/dev/null
    rm -f "$dir/redis.pid"
  fi
  return 0
}

# The Twenty version everything is pinned to: the compose image, and the published client whose schema the
# fake Twenty validates against.
twenty_version() { tr -d '[:space:]' <"$(dirname "${BASH_SOURCE[0]}")/../config/twenty.version"; }

# twenty_schema DIR: prints the path of Twenty's /metadata schema (SDL) for the pinned version, rebuilding it
# under DIR from npm's twenty-client-sdk when missing (a tarball fetch, no install; then scripts/twenty-schema.mjs).
twenty_schema() {
  local dir=$1 version out pkg
  version=$(twenty_version)
  out=$dir/$version/metadata.graphql
  if [ -s "$out" ] && [ "$out" -nt scripts/twenty-schema.mjs ]; then
    echo "$out"
    return 0
  fi
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  pkg=$dir/$version/package
  rm -rf "$pkg" && mkdir -p "$dir/$version"
  log "Twenty schema: fetching twenty-client-sdk@$version from npm"
  local tarball
  tarball=$(cd "$dir/$version" && npm pack --silent "twenty-client-sdk@$version" 2>/dev/null | tail -1) \
    || die "npm pack twenty-client-sdk@$version failed (is the npm registry reachable?)"
  tar -xzf "$dir/$version/$tarball" -C "$dir/$version" && rm -f "$dir/$version/$tarball"
  node scripts/twenty-schema.mjs "$pkg" "$out" >&2 || die "cannot rebuild Twenty's schema from twenty-client-sdk@$version"
  echo "$out"
}

# ensure_prometheus: Debian's Prometheus and Alertmanager (promtool checks the monitoring profile's rules,
# and a real Prometheus scrapes the metrics listener in the tests).
ensure_prometheus() {
  command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null \
    || apt_install prometheus prometheus-alertmanager
  command -v promtool >/dev/null || die "promtool not found after installing prometheus"
}

# ensure_browser DIR: Debian's Chromium and Arabic-capable fonts (apt), and Playwright for Python pinned by
# tests/browser/requirements.txt in a virtualenv under DIR (with the Python fakes: moto's S3 server and the
# aiosmtpd SMTP sink) (no browser download: the tests drive
# /usr/bin/chromium). Prints the virtualenv's python.
ensure_browser() {
  local dir=$1 req
  req="$(dirname "${BASH_SOURCE[0]}")/../tests/browser/requirements.txt"
  command -v chromium >/dev/null || apt_install chromium
  [ -d /usr/share/fonts/truetype/noto ] || apt_install fonts-noto-core
  command -v chromium >/dev/null || die "chromium not found after install"
  if [ ! -x "$dir/bin/python" ] || ! cmp -s "$req" "$dir/requirements.txt"; then
    log "Playwright for Python: installing $(tr '\n' ' ' <"$req")into $dir"
    python3 -m venv "$dir" >&2 || { apt_install python3-venv && python3 -m venv "$dir" >&2; } \
      || die "cannot create a Python virtualenv in $dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2 \
      || die "pip could not install $req (is PyPI reachable?)"
    cp "$req" "$dir/requirements.txt"
  fi
  echo "$dir/bin/python"
}
