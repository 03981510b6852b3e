#!/usr/bin/env bash
# shellcheck shell=bash
#
# scripts/lib.sh: helpers shared by scripts/run and scripts/test. Source it, don't run it:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# What it provides:
#   log / warn / die          print "==> message" to stderr (die also exits 1)
#   ensure_postgres           make the PostgreSQL server named by DATABASE_URL reachable
#   ensure_redis              make the Redis server named by REDIS_URL reachable
#   ensure_rust_tools [fmt] [clippy]
#                             check that cargo (and optionally rustfmt/clippy) is installed,
#                             and Node/npm (ensure_node: the api's build runs npm ci)
#   target_dir                print the cargo target directory
#   export_default_config     export the RetentionOS configuration variables with their defaults
#   url_host_port URL DEFAULT_PORT   print "HOST PORT" parsed from a URL
#   stop_started_services     stop PostgreSQL/Redis instances that *this* process started
#   wait_for_url_file FILE PID [SECS]  print the URL a starting process (PID) writes to FILE
#
# Services: ensure_postgres/ensure_redis only ever manage a server on localhost, reuse one
# that already answers, and never stop, restart or wipe a server they did not start. Every
# server they start is appended to the RTOS_STARTED_SERVICES array ("postgresql:VER/CLUSTER"
# or "redis:PORT") so a caller can tell what it started and stop only that.
#
# Choice: scripts/run and scripts/test leave the PostgreSQL/Redis servers they started
# RUNNING when they exit. They are shared, stateless-enough development services (several
# stacks may use them side by side, with different database names / REDIS_PREFIX values),
# and restarting them on every run would be slow. Set RTOS_STOP_SERVICES=1 to have
# scripts/run stop, on exit, the servers it started itself (never ones it merely reused).
# The api and worker processes, on the other hand, are always stopped by scripts/run.

# This file is meant to be sourced; running it directly does nothing useful.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "scripts/lib.sh is a library: source it from another script" >&2
    exit 1
fi

# Idempotent: sourcing twice is harmless.
if [[ -n "${RTOS_LIB_SOURCED:-}" ]]; then
    return 0
fi
RTOS_LIB_SOURCED=1

# Callers also set these, but a library that relies on them should not assume it.
set -euo pipefail

# Repository root (the parent of scripts/).
RTOS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RTOS_ROOT

# Services started by this process (see the header comment).
RTOS_STARTED_SERVICES=()

# Whether `apt-get update` already ran in this process.
RTOS_APT_UPDATED=0

# ---------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() {
    printf '==> ERROR: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------

# Exports every configuration variable the scripts care about, keeping values already set
# (an empty value counts as unset, as in shared::Config) and filling in the defaults.
# Exporting them means the binaries, the tests and the scripts all see the same values,
# which is what lets two stacks run side by side.
export_default_config() {
    export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/retentionos}"
    export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
    export API_ADDR="${API_ADDR:-127.0.0.1:8080}"
    export WORKER_METRICS_ADDR="${WORKER_METRICS_ADDR:-127.0.0.1:9091}"
    export OPS_TOKEN="${OPS_TOKEN:-dev-ops-token}"
    export REDIS_PREFIX="${REDIS_PREFIX:-rtos:}"
}

# Prints the cargo target directory (.cargo/config.toml sets the same default).
target_dir() {
    echo "${CARGO_TARGET_DIR:-/var/tmp/retentionos-target}"
}

# ---------------------------------------------------------------------------------------
# URL parsing
# ---------------------------------------------------------------------------------------

# db_url_with_name URL NAME -> URL with its database (path) replaced by NAME, query kept.
db_url_with_name() {
    local base="${1%%\?*}" query=""
    if [[ "$1" == *\?* ]]; then query="?${1#*\?}"; fi
    printf '%s://%s/%s%s\n' "${base%%://*}" "$(url_authority "$base")" "$2" "$query"
}

# url_authority URL -> "user:pass@host:port" part of scheme://authority/path?query
url_authority() {
    local u="$1"
    u="${u#*://}"
    u="${u%%/*}"
    u="${u%%\?*}"
    u="${u%%#*}"
    printf '%s' "$u"
}

# url_userinfo URL -> "user:pass" (empty when the URL has none)
url_userinfo() {
    local a
    a="$(url_authority "$1")"
    if [[ "$a" == *@* ]]; then
        printf '%s' "${a%@*}"
    fi
}

# url_host_port URL DEFAULT_PORT -> "HOST PORT" on stdout. The host defaults to 127.0.0.1
# (as libpq's TCP default would, for our purposes), IPv6 literals lose their brackets.
url_host_port() {
    local hp host port
    hp="$(url_authority "$1")"
    hp="${hp##*@}"
    if [[ "$hp" == \[* ]]; then
        host="${hp#\[}"
        host="${host%%\]*}"
        port="${hp#*\]}"
        port="${port#:}"
    elif [[ "$hp" == *:* ]]; then
        host="${hp%%:*}"
        port="${hp#*:}"
    else
        host="$hp"
        port=""
    fi
    printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$2}"
}

# addr_host_port "HOST:PORT" -> "HOST PORT" for socket addresses such as API_ADDR.
# A wildcard bind address is mapped to the loopback address a client would connect to.
addr_host_port() {
    local a="$1" host port
    port="${a##*:}"
    host="${a%:*}"
    host="${host#\[}"
    host="${host%\]}"
    case "$host" in
        "" | 0.0.0.0) host=127.0.0.1 ;;
        ::) host=::1 ;;
    esac
    printf '%s %s\n' "$host" "$port"
}

# addr_url_host HOST -> HOST, bracketed when it is an IPv6 literal (for http:// URLs).
addr_url_host() {
    if [[ "$1" == *:* ]]; then printf '[%s]' "$1"; else printf '%s' "$1"; fi
}

# is_local_host HOST: true for the loopback names this script is allowed to manage.
is_local_host() {
    case "$1" in
        localhost | 127.0.0.1 | ::1) return 0 ;;
        *) return 1 ;;
    esac
}

# port_in_use HOST PORT: true when something accepts TCP connections there.
port_in_use() {
    # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# ---------------------------------------------------------------------------------------
# Privileges and packages
# ---------------------------------------------------------------------------------------

# as_root CMD...: runs CMD as root (directly when we are root, else through sudo).
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "'$*' needs root, and sudo is not available; run it as root or install sudo"
    fi
}

# apt_install PKG...: installs Debian packages non-interactively (apt-get update first,
# once per process). Works without a terminal (CI runs with no stdin).
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "cannot install $* automatically: apt-get not found; install it by hand"
    if [[ "$RTOS_APT_UPDATED" -eq 0 ]]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null ||
            die "apt-get update failed"
        RTOS_APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" </dev/null ||
        die "apt-get install $* failed"
}

# ---------------------------------------------------------------------------------------
# Rust toolchain
# ---------------------------------------------------------------------------------------

# ensure_rust_tools [fmt] [clippy]: checks that cargo (and the named components) exist.
ensure_rust_tools() {
    # rustup installs into ~/.cargo/bin; a non-login shell (CI) may not have it on PATH.
    if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        die "cargo not found on PATH. Install the Rust toolchain (https://rustup.rs), e.g.
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
then open a new shell (or 'source ~/.cargo/env') and try again."
    fi
    ensure_node
    local tool
    for tool in "$@"; do
        case "$tool" in
            fmt)
                cargo fmt --version >/dev/null 2>&1 ||
                    die "rustfmt is missing: rustup component add rustfmt"
                ;;
            clippy)
                cargo clippy --version >/dev/null 2>&1 ||
                    die "clippy is missing: rustup component add clippy"
                ;;
            *) die "ensure_rust_tools: unknown tool '$tool'" ;;
        esac
    done
}

# ensure_node: Node.js (18 or newer) and npm on PATH, installed with apt when absent. The
# api's build (api/build.rs) runs `npm ci` for the dashboard's chart library.
ensure_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        log "installing nodejs and npm (Debian packages): the api's build needs npm"
        apt_install nodejs npm
    fi
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    ((major >= 18)) || die "Node $major is too old: the build needs Node 18 or newer"
}

# ---------------------------------------------------------------------------------------
# sqlx-cli
# ---------------------------------------------------------------------------------------

SQLX_CLI_VERSION=0.9.0
# The sqlx-cli matching the sqlx in Cargo.lock (cargo sqlx prepare, sqlx migrate), built from
# crates.io once (~3-5 min) when absent or another version.
ensure_sqlx_cli() {
    if [[ "$(sqlx --version 2>/dev/null)" != "sqlx-cli $SQLX_CLI_VERSION" ]]; then
        log "cargo install sqlx-cli $SQLX_CLI_VERSION"
        cargo install --locked --quiet sqlx-cli --version "$SQLX_CLI_VERSION" \
            --no-default-features --features postgres,rustls </dev/null
    fi
}

# with_sqlx_scratch_db CMD...: runs CMD with DATABASE_URL naming a freshly created and
# migrated scratch database on DATABASE_URL's server (and SQLX_OFFLINE=false, so the query
# macros describe their queries there), then drops it. The name starts with rtos_test_, so
# a killed run's leftover is dropped by scripts/test's `dropdbs` step.
with_sqlx_scratch_db() {
    local db="rtos_test_sqlx_$$" admin url rc=0
    admin="$(db_url_with_name "$DATABASE_URL" postgres)"
    url="$(db_url_with_name "$DATABASE_URL" "$db")"
    psql -X -w -q -v ON_ERROR_STOP=1 "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    if sqlx migrate run --source "$RTOS_ROOT/migrations" --database-url "$url" >/dev/null; then
        DATABASE_URL="$url" SQLX_OFFLINE=false "$@" || rc=$?
    else
        rc=$?
    fi
    psql -X -w -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    return "$rc"
}

# ---------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------

ensure_aiosmtpd() {
    # The mail tests (tests/tests/mail.rs, the dashboard's) and the browser stack send mail
    # to a throwaway SMTP server, Python's aiosmtpd (tests/src/smtp_sink.py, run by python3).
    local req=aiosmtpd==1.4.6 out
    command -v python3 >/dev/null 2>&1 || apt_install --no-install-recommends python3
    if python3 -c 'import aiosmtpd' 2>/dev/null; then
        return 0
    fi
    # pip for a python3 of its own (pyenv, a venv); a system python3 refuses pip (PEP 668,
    # or has none), so there Debian's python3-aiosmtpd (1.4.3, which the sink works with).
    log "pip install $req"
    if out="$(python3 -m pip install --quiet --disable-pip-version-check "$req" </dev/null 2>&1)"; then
        :
    elif [[ "$(readlink -f "$(command -v python3)")" == /usr/bin/python3* ]]; then
        log "pip refused the system python3; installing Debian's python3-aiosmtpd instead"
        apt_install --no-install-recommends python3-aiosmtpd
    else
        die "could not install $req for $(command -v python3): $out"
    fi
    python3 -c 'import aiosmtpd' || die "aiosmtpd is still not importable by $(command -v python3)"
}

SCHEMATHESIS_VERSION=4.32.5
# ensure_schemathesis: the pinned Schemathesis (the API fuzzer of tests/api-fuzz/run.sh) in a
# virtualenv of its own, RTOS_SCHEMATHESIS_VENV (default /var/tmp/rtos-schemathesis, outside
# the checkout, shared by every checkout of the machine): reused when its `st` is that
# version, else created (python3 -m venv; Debian's python3-venv when the venv module is
# missing) and pip-installed into (~1 min, once). Under a lock, so two runs never install
# into the same venv at once. Sets SCHEMATHESIS_ST to the path of its `st` command.
ensure_schemathesis() {
    local venv="${RTOS_SCHEMATHESIS_VENV:-/var/tmp/rtos-schemathesis}" want out
    want="st, version $SCHEMATHESIS_VERSION"
    SCHEMATHESIS_ST="$venv/bin/st"
    if [[ "$("$SCHEMATHESIS_ST" --version 2>/dev/null)" == "$want" ]]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || apt_install --no-install-recommends python3
    mkdir -p "$(dirname "$venv")"
    (
        flock 9
        # Another run may have installed it while this one waited for the lock.
        if [[ "$("$SCHEMATHESIS_ST" --version 2>/dev/null)" == "$want" ]]; then
            exit 0
        fi
        if [[ ! -x "$venv/bin/python" ]]; then
            log "python3 -m venv $venv"
            rm -rf "$venv"
            if ! out="$(python3 -m venv "$venv" 2>&1 </dev/null)"; then
                # Debian's python3 ships the venv module (and ensurepip) separately.
                log "python3 -m venv failed ($out); installing Debian's python3-venv"
                rm -rf "$venv"
                apt_install --no-install-recommends python3-venv
                python3 -m venv "$venv" </dev/null || die "python3 -m venv $venv failed"
            fi
        fi
        log "pip install schemathesis==$SCHEMATHESIS_VERSION (into $venv)"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "schemathesis==$SCHEMATHESIS_VERSION" </dev/null ||
            die "pip install schemathesis==$SCHEMATHESIS_VERSION into $venv failed"
    ) 9>"$venv.lock"
    [[ "$("$SCHEMATHESIS_ST" --version 2>/dev/null)" == "$want" ]] ||
        die "$SCHEMATHESIS_ST is not $want after installing it"
}

# pg_ready HOST PORT: the server accepts connections (says nothing about authentication).
pg_ready() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$1" -p "$2" -t 3 >/dev/null 2>&1
}

# pg_can_login HOST PORT [USERINFO]: can run a query on the "postgres" database over TCP,
# never prompting for a password: as USERINFO (the "user:password" of DATABASE_URL) when
# given, else (or when that fails) as user postgres.
pg_can_login() {
    local host="$1" port="$2" ui="${3:-}" who
    command -v psql >/dev/null 2>&1 || return 1
    for who in ${ui:+"$ui"} postgres; do
        if PGCONNECT_TIMEOUT=5 psql -X -w -q -At \
            "postgresql://$who@$(addr_url_host "$host"):$port/postgres" \
            -c 'select 1' </dev/null >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

# pg_find_cluster PORT -> "VERSION CLUSTER" of the local Debian cluster for that port.
# Prefers pg_lsclusters (matches the port); falls back to the newest version's "main"
# cluster under /etc/postgresql. Prints nothing when PostgreSQL is not installed.
pg_find_cluster() {
    local want_port="$1" ver name port _rest
    if command -v pg_lsclusters >/dev/null 2>&1; then
        while read -r ver name port _rest; do
            if [[ "$port" == "$want_port" ]]; then
                printf '%s %s\n' "$ver" "$name"
                return 0
            fi
        done < <(pg_lsclusters --no-header 2>/dev/null || true)
    fi
    if compgen -G '/etc/postgresql/*/main' >/dev/null; then
        # shellcheck disable=SC2012 # version directory names are plain numbers
        ver="$(ls /etc/postgresql | sort -V | tail -n 1)"
        if [[ -d "/etc/postgresql/$ver/main" ]]; then
            printf '%s main\n' "$ver"
        fi
    fi
}

# pg_cluster_port VERSION CLUSTER -> the port in that cluster's postgresql.conf (5432 if unset)
pg_cluster_port() {
    local conf="/etc/postgresql/$1/$2/postgresql.conf" port=""
    if [[ -r "$conf" ]]; then
        port="$(sed -n 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$conf" | tail -n 1)"
    fi
    echo "${port:-5432}"
}

# pg_start_cluster VERSION CLUSTER: starts it unless it is already running.
pg_start_cluster() {
    local ver="$1" name="$2"
    if as_root pg_ctlcluster "$ver" "$name" status >/dev/null 2>&1; then
        log "PostgreSQL $ver/$name is already running"
        return 0
    fi
    log "starting PostgreSQL $ver/$name"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start ||
        die "could not start PostgreSQL $ver/$name (see /var/log/postgresql/postgresql-$ver-$name.log)"
    RTOS_STARTED_SERVICES+=("postgresql:$ver/$name")
}

# pg_wait HOST PORT SECONDS: waits until pg_isready succeeds.
pg_wait() {
    local host="$1" port="$2" deadline=$((SECONDS + $3))
    until pg_ready "$host" "$port"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 1
    done
}

# pg_trust_local VERSION CLUSTER: prepends trust rules for 127.0.0.1 and ::1 to the
# cluster's pg_hba.conf (first matching line wins) and reloads it. A fresh Debian install
# uses scram-sha-256 for TCP, and the postgres role has no password.
pg_trust_local() {
    local ver="$1" name="$2" hba tmp head_lines
    hba="/etc/postgresql/$ver/$name/pg_hba.conf"
    as_root test -f "$hba" || die "cannot find $hba to allow local trust authentication"
    head_lines="$(as_root head -n 3 "$hba")"
    if grep -qx 'host all all 127.0.0.1/32 trust' <<<"$head_lines"; then
        log "$hba already trusts local TCP connections"
    else
        log "adding local trust rules to the top of $hba"
        tmp="$(mktemp)"
        {
            echo '# Added by RetentionOS scripts/lib.sh: local development trust over TCP.'
            echo 'host all all 127.0.0.1/32 trust'
            echo 'host all all ::1/128 trust'
            as_root cat "$hba"
        } >"$tmp"
        # cp onto the existing file keeps its owner and mode.
        as_root cp "$tmp" "$hba"
        rm -f "$tmp"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload ||
        die "could not reload PostgreSQL $ver/$name"
}

# ensure_postgres: makes sure the server named by DATABASE_URL accepts TCP logins (as the
# URL's user, or as user postgres, without a password prompt). Manages (installs/starts/configures) it only when its host is
# local; a remote server is merely waited for.
ensure_postgres() {
    local url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/retentionos}"
    local host port cluster ver name cport userinfo
    read -r host port < <(url_host_port "$url" 5432)
    userinfo="$(url_userinfo "$url")"

    if ! is_local_host "$host"; then
        if ! command -v pg_isready >/dev/null 2>&1; then
            warn "PostgreSQL at $host:$port is not local and pg_isready is missing: not checking it"
            return 0
        fi
        log "PostgreSQL at $host:$port is not local: not managing it, just waiting for it"
        pg_wait "$host" "$port" 30 || die "PostgreSQL at $host:$port is not reachable"
        return 0
    fi

    if pg_ready "$host" "$port"; then
        log "PostgreSQL is running on $host:$port; reusing it"
    else
        cluster="$(pg_find_cluster "$port")"
        if [[ -z "$cluster" ]]; then
            log "PostgreSQL is not installed; installing it"
            apt_install postgresql
            cluster="$(pg_find_cluster "$port")"
            [[ -n "$cluster" ]] || die "installed PostgreSQL but found no cluster under /etc/postgresql"
        fi
        read -r ver name <<<"$cluster"
        cport="$(pg_cluster_port "$ver" "$name")"
        if [[ "$cport" != "$port" ]]; then
            die "PostgreSQL cluster $ver/$name listens on port $cport, but DATABASE_URL wants port $port.
    Use port $cport in DATABASE_URL (and a different database name), or create a cluster:
    pg_createcluster -p $port $ver <name> && pg_ctlcluster $ver <name> start"
        fi
        if ! pg_ready "$host" "$port"; then
            pg_start_cluster "$ver" "$name"
        fi
        log "waiting for PostgreSQL on $host:$port (up to 30 s)"
        pg_wait "$host" "$port" 30 || die "PostgreSQL on $host:$port did not become ready in 30 s"
    fi

    # A fresh Debian cluster refuses password-less TCP logins: allow them from localhost.
    if ! pg_can_login "$host" "$port" "$userinfo"; then
        cluster="$(pg_find_cluster "$port")"
        [[ -n "$cluster" ]] ||
            die "cannot log in to PostgreSQL on $host:$port as postgres, and it is not a local Debian cluster this script can reconfigure"
        read -r ver name <<<"$cluster"
        pg_trust_local "$ver" "$name"
        local deadline=$((SECONDS + 30))
        until pg_can_login "$host" "$port" "$userinfo"; do
            if ((SECONDS >= deadline)); then
                die "still cannot run 'psql postgresql://postgres@$host:$port/postgres' after enabling trust auth"
            fi
            sleep 1
        done
    fi
    log "PostgreSQL ready on $host:$port"
}

# ---------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------

# redis_cli_auth_env URL: exports REDISCLI_AUTH when the URL carries a password, so
# redis-cli can ping a password-protected server (without putting it on a command line).
redis_cli_auth_env() {
    local ui pass
    ui="$(url_userinfo "$1")"
    if [[ "$ui" == *:* ]]; then
        pass="${ui#*:}"
        # URLs percent-encode special characters (e.g. %40 for @).
        pass="$(printf '%b' "${pass//%/\\x}")"
        if [[ -n "$pass" ]]; then
            export REDISCLI_AUTH="$pass"
        fi
    fi
}

# redis_ping HOST PORT: the server answers PONG.
redis_ping() {
    command -v redis-cli >/dev/null 2>&1 || return 1
    [[ "$(timeout 5 redis-cli -h "$1" -p "$2" ping 2>/dev/null)" == "PONG" ]]
}

# redis_start PORT: starts a throwaway, non-persistent local redis-server on PORT.
redis_start() {
    local port="$1" data_dir=/var/lib/redis log_dir=/var/log/redis
    # Fall back to a private directory when the system ones cannot be written (non-root).
    if ! mkdir -p "$data_dir" "$log_dir" 2>/dev/null || [[ ! -w "$data_dir" || ! -w "$log_dir" ]]; then
        data_dir="${TMPDIR:-/tmp}/retentionos-redis"
        log_dir="$data_dir"
        mkdir -p "$data_dir"
    fi
    log "starting redis-server on 127.0.0.1:$port (log: $log_dir/redis-$port.log)"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
        --save "" --appendonly no \
        --dir "$data_dir" --logfile "$log_dir/redis-$port.log" \
        --pidfile "$data_dir/redis-$port.pid" </dev/null ||
        die "could not start redis-server on port $port (see $log_dir/redis-$port.log)"
    RTOS_STARTED_SERVICES+=("redis:$port")
}

# ensure_redis: makes sure the server named by REDIS_URL answers PING. Manages it only
# when its host is local; a remote server is merely waited for.
ensure_redis() {
    local url="${REDIS_URL:-redis://127.0.0.1:6379}" host port
    if [[ "$url" != redis://* && "$url" != rediss://* ]]; then
        warn "REDIS_URL is not a redis:// URL; not managing Redis"
        return 0
    fi
    read -r host port < <(url_host_port "$url" 6379)
    redis_cli_auth_env "$url"

    if ! is_local_host "$host"; then
        log "Redis at $host:$port is not local: not managing it, just waiting for it"
    elif redis_ping "$host" "$port"; then
        log "Redis is running on $host:$port; reusing it"
        return 0
    else
        if ! command -v redis-server >/dev/null 2>&1; then
            log "Redis is not installed; installing it"
            apt_install redis-server
        fi
        # Installing the package may have started the system instance on this port.
        if ! redis_ping "$host" "$port"; then
            if port_in_use "$host" "$port"; then
                die "something other than a reachable Redis listens on $host:$port (wrong password in REDIS_URL?)"
            fi
            redis_start "$port"
        fi
    fi

    log "waiting for Redis on $host:$port (up to 15 s)"
    local deadline=$((SECONDS + 15))
    until redis_ping "$host" "$port"; do
        if ((SECONDS >= deadline)); then
            die "Redis on $host:$port did not answer PING in 15 s"
        fi
        sleep 0.5
    done
    log "Redis ready on $host:$port"
}

# ---------------------------------------------------------------------------------------
# Stopping what we started
# ---------------------------------------------------------------------------------------

# stop_started_services: stops the PostgreSQL clusters and Redis servers recorded in
# RTOS_STARTED_SERVICES, i.e. only those this process started, never reused ones.
stop_started_services() {
    local svc
    for svc in "${RTOS_STARTED_SERVICES[@]}"; do
        case "$svc" in
            postgresql:*)
                local vc="${svc#postgresql:}"
                log "stopping PostgreSQL ${vc} (started by this script)"
                as_root pg_ctlcluster --skip-systemctl-redirect "${vc%%/*}" "${vc#*/}" stop ||
                    warn "could not stop PostgreSQL $vc"
                ;;
            redis:*)
                log "stopping Redis on port ${svc#redis:} (started by this script)"
                redis-cli -h 127.0.0.1 -p "${svc#redis:}" shutdown nosave >/dev/null 2>&1 ||
                    warn "could not stop Redis on port ${svc#redis:}"
                ;;
        esac
    done
    RTOS_STARTED_SERVICES=()
}

# ---------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------

# wait_for_url_file FILE PID [SECS]: waits up to SECS (default 60) for the process PID to
# write its URL to FILE (rtos-stripe-sandbox --url-file), then prints the file's first line.
# Fails (status 1, a message on stderr) when PID exits first or time runs out.
wait_for_url_file() {
    local file="$1" pid="$2" secs="${3:-60}" deadline
    deadline=$((SECONDS + secs))
    until [[ -s "$file" ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            warn "process $pid exited before writing $file"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            warn "process $pid did not write $file within $secs s"
            return 1
        fi
        sleep 0.1
    done
    head -n 1 "$file"
}
