#!/usr/bin/env bash
#
# tests/browser/run.sh: browser tests of the widget and the tenant dashboard in Debian's
# headless Chromium, driven by playwright-core (no browser download).
#
#   tests/browser/run.sh              mock suite, then the end-to-end suites
#   tests/browser/run.sh --mock-only  only widget.mock.test.mjs (no Rust stack needed)
#   tests/browser/run.sh --e2e-only   only the end-to-end suites (dashboard, then e2e)
#
# 1. installs chromium (apt) when /usr/bin/chromium is missing, and the npm deps (npm ci);
# 2. widget.mock.test.mjs: the widget against a mock API (steps, retries, timeouts,
#    fail-open, accessibility, style isolation, size budget);
# 3. e2e.test.mjs against a stack of its own: builds retentionos-api and retentionos-workers,
#    creates a fresh database rtos_browser_<random> (`retentionos-api migrate`), starts the
#    api and the workers on ports they bind themselves (port 0; the api's address is read
#    from its log) with REDIS_PREFIX=rtos_browser:<random>:, and the Stripe sandbox
#    (rtos-stripe-sandbox, as scripts/run starts it: STRIPE_API_BASE of the api and workers;
#    the "Demo" tenant's test mode connected to it by `retentionos-api demo
#    --stripe-sandbox`, its id and key exported as DEMO_TENANT_ID / DEMO_PUBLISHABLE_KEY),
#    and a throwaway SMTP server (tests/src/smtp_sink.py, aiosmtpd, port of its own choosing;
#    the api's SMTP_URL; each message a JSON file in SMTP_SINK_DIR for the suites to read),
#    waits for /readyz, then runs
#    dashboard.test.mjs (the /app dashboard: sign-in, test/live switch, roles, CSRF,
#    lockout, set-password links made with `retentionos-api user create`, screenshots at
#    1280 and 375 px, first contentful paint), then e2e.test.mjs, the demo-page scenarios
#    (save, cancel, abandon, fail-open; its last one kills the api, so it runs last).
# On exit (success, failure or interrupt) it stops the processes it started, drops its
# database and deletes its Redis keys. Screenshots go to tests/browser/screenshots/.
#
# Environment: CARGO_TARGET_DIR (default /var/tmp/retentionos-target), CHROMIUM_PATH
# (default /usr/bin/chromium), RTOS_BROWSER_NO_BUILD=1 (use the binaries as built),
# RTOS_BROWSER_KEEP_LOGS=1 (keep the api/worker logs; they are printed on failure anyway).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODE=all
case "${1:-}" in
    "") ;;
    --mock-only) MODE=mock ;;
    --e2e-only) MODE=e2e ;;
    -h | --help)
        sed -n '2,28p' "$0"
        exit 0
        ;;
    *)
        echo "usage: $0 [--mock-only|--e2e-only]" >&2
        exit 2
        ;;
esac

# Service helpers (ensure_postgres, ensure_redis, apt_install, ensure_rust_tools, log, die)
# come from the project's scripts/lib.sh; minimal stand-ins otherwise.
if [[ -f "$ROOT/scripts/lib.sh" ]]; then
    # shellcheck disable=SC1091 # the project's own helpers (scripts/lib.sh)
    source "$ROOT/scripts/lib.sh"
else
    log() { printf '==> %s\n' "$*" >&2; }
    die() {
        printf '==> ERROR: %s\n' "$*" >&2
        exit 1
    }
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" </dev/null
    }
    wait_for_url_file() { # FILE PID SECS: the first line PID writes to FILE
        local i
        for ((i = 0; i < $3 * 10; i++)); do
            if [[ -s "$1" ]]; then
                head -n 1 "$1"
                return 0
            fi
            kill -0 "$2" 2>/dev/null || return 1
            sleep 0.1
        done
        return 1
    }
fi
blog() { log "browser: $*"; }

CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
export CHROMIUM_PATH

# ---------------------------------------------------------------------------------------
# Tools: Chromium, Node, npm deps
# ---------------------------------------------------------------------------------------
if [[ ! -x "$CHROMIUM_PATH" ]]; then
    blog "installing chromium (Debian package)"
    apt_install chromium
fi
[[ -x "$CHROMIUM_PATH" ]] || die "no Chromium at $CHROMIUM_PATH"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    blog "installing nodejs and npm (Debian packages)"
    apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 18)) || die "Node $node_major is too old: the tests need Node 18 or newer (20 recommended)"

# npm ci empties node_modules first: under a lock, and only when node_modules was not
# installed from this very package-lock.json, so a second run in the same checkout neither
# races the install nor pulls the modules from under a suite that is running.
lock_sum="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
(
    flock 9
    if [[ "$(cat "$HERE/node_modules/.rtos-lock-sha256" 2>/dev/null)" == "$lock_sum" && -d "$HERE/node_modules/playwright-core" ]]; then
        blog "npm deps up to date (node_modules matches package-lock.json)"
    else
        blog "npm ci (playwright-core, pinned)"
        cd "$HERE"
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
        printf '%s\n' "$lock_sum" >"$HERE/node_modules/.rtos-lock-sha256"
    fi
) 9>"${TMPDIR:-/tmp}/rtos-browser-npm-$(printf '%s' "$HERE" | sha256sum | cut -c1-16).lock"
mkdir -p "$HERE/screenshots"

run_suite() {
    (cd "$HERE" && node --test --test-reporter=spec "$1")
}

if [[ "$MODE" != e2e ]]; then
    blog "mock suite (widget against a mock API)"
    run_suite widget.mock.test.mjs
fi
if [[ "$MODE" == mock ]]; then
    exit 0
fi

# ---------------------------------------------------------------------------------------
# The stack: fresh database, own Redis prefix, api + workers on free ports
# ---------------------------------------------------------------------------------------
command -v psql >/dev/null 2>&1 || die "psql is required (apt-get install postgresql-client)"
command -v curl >/dev/null 2>&1 || die "curl is required"

RAND="$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')"
DB_NAME="rtos_browser_${RAND}"
ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB_NAME}"
export REDIS_URL="redis://127.0.0.1:6379"
export REDIS_PREFIX="rtos_browser:${RAND}:"
export OPS_TOKEN="browser-ops-token"
export DEMO_ENABLED=true # shared::Config parses a bool (true/false)
export APP_ENV="${APP_ENV:-development}"
# The configuration below is this stack's own, whatever the caller exported.
unset DATABASE_READ_URL READ_DATABASE_URL 2>/dev/null || true

# Port 0: each process binds a port of the kernel's choosing, so no other process can take
# it between a "free port" probe and the bind. The api's address comes from its log.
export API_ADDR="127.0.0.1:0"
export WORKER_METRICS_ADDR="127.0.0.1:0"
API_URL=""

LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rtos-browser.XXXXXX")"
API_PID=""
WORKERS_PID=""
SANDBOX_PID=""
SMTP_PID=""
DB_CREATED=0
FAILED=1

stop_pid() { # stop_pid PID NAME: TERM, then KILL after 10 s
    local pid="$1" name="$2" i
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            blog "$name did not stop on SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    stop_pid "$WORKERS_PID" workers
    stop_pid "$API_PID" api
    stop_pid "$SANDBOX_PID" stripe-sandbox
    stop_pid "$SMTP_PID" smtp
    if ((rc != 0 || FAILED)); then
        for f in api workers migrate stripe-sandbox demo smtp; do
            if [[ -s "$LOG_DIR/$f.log" ]]; then
                echo "----- last lines of $f.log -----" >&2
                tail -n 40 "$LOG_DIR/$f.log" >&2
            fi
        done
    fi
    if ((DB_CREATED)); then
        psql -X -w -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"${DB_NAME}\" WITH (FORCE)" >/dev/null ||
            echo "==> WARNING: could not drop database ${DB_NAME}" >&2
    fi
    if command -v redis-cli >/dev/null 2>&1; then
        redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" 2>/dev/null |
            xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1
    fi
    if [[ "${RTOS_BROWSER_KEEP_LOGS:-0}" == 1 ]]; then
        blog "logs kept in $LOG_DIR"
    else
        rm -rf "$LOG_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if declare -F ensure_postgres >/dev/null; then ensure_postgres; fi
if declare -F ensure_redis >/dev/null; then ensure_redis; fi

TARGET="${CARGO_TARGET_DIR:-${RTOS_TARGET_DIR:-/var/tmp/retentionos-target}}"
API_BIN="$TARGET/debug/retentionos-api"
WORKERS_BIN="$TARGET/debug/retentionos-workers"
SANDBOX_BIN="$TARGET/debug/rtos-stripe-sandbox"
if [[ "${RTOS_BROWSER_NO_BUILD:-0}" != 1 ]]; then
    # shellcheck disable=SC2119 # no components needed, just cargo on PATH
    if declare -F ensure_rust_tools >/dev/null; then ensure_rust_tools; fi
    blog "cargo build --bins -p retentionos-api -p retentionos-workers, --bin rtos-stripe-sandbox"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build -p retentionos-api -p retentionos-workers -p retentionos-tests \
        --bin retentionos-api --bin retentionos-workers --bin rtos-stripe-sandbox)
fi
[[ -x "$API_BIN" && -x "$WORKERS_BIN" ]] || die "missing $API_BIN or $WORKERS_BIN"
[[ -x "$SANDBOX_BIN" ]] || die "missing $SANDBOX_BIN (cargo build -p retentionos-tests --bin rtos-stripe-sandbox)"

blog "database $DB_NAME: retentionos-api migrate"
DB_CREATED=1
"$API_BIN" migrate >"$LOG_DIR/migrate.log" 2>&1 || die "retentionos-api migrate failed"

# The Stripe sandbox first: the demo command and the api/workers need its URL.
blog "starting the Stripe sandbox (rtos-stripe-sandbox)"
STRIPE_SANDBOX_ADDR=127.0.0.1:0 "$SANDBOX_BIN" --url-file "$LOG_DIR/stripe-sandbox.url" \
    >/dev/null 2>"$LOG_DIR/stripe-sandbox.log" &
SANDBOX_PID=$!
STRIPE_API_BASE="$(wait_for_url_file "$LOG_DIR/stripe-sandbox.url" "$SANDBOX_PID" 60)" ||
    die "the Stripe sandbox did not start"
export STRIPE_API_BASE
blog "Stripe sandbox at $STRIPE_API_BASE"
# The demo tenant, connected to the sandbox, as scripts/run makes it.
"$API_BIN" demo --stripe-sandbox >"$LOG_DIR/demo.json" 2>"$LOG_DIR/demo.log" ||
    die "retentionos-api demo --stripe-sandbox failed"
DEMO_TENANT_ID="$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); if (j.stripe?.connected !== "sandbox" && j.stripe?.connected !== "kept") process.exit(1); console.log(j.tenant_id)' "$LOG_DIR/demo.json")" ||
    die "the demo command did not connect the demo tenant to the sandbox: $(cat "$LOG_DIR/demo.json")"
DEMO_PUBLISHABLE_KEY="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).publishable_key' "$LOG_DIR/demo.json")"
export DEMO_TENANT_ID DEMO_PUBLISHABLE_KEY

# A throwaway SMTP server (tests/src/smtp_sink.py, aiosmtpd) on a port of its own choosing:
# the api sends invitations and reset links to it; the suites read each message as a JSON
# file in SMTP_SINK_DIR (msg-NNNNNN.json, in arrival order).
if declare -F ensure_aiosmtpd >/dev/null; then ensure_aiosmtpd; fi
python3 -c 'import aiosmtpd' 2>/dev/null || die "python3 cannot import aiosmtpd (scripts/lib.sh ensure_aiosmtpd installs it)"
export SMTP_SINK_DIR="$LOG_DIR/mail"
mkdir -p "$SMTP_SINK_DIR"
python3 "$ROOT/tests/src/smtp_sink.py" 0 "$SMTP_SINK_DIR" >"$LOG_DIR/smtp.log" 2>&1 &
SMTP_PID=$!
SMTP_PORT="$(wait_for_url_file "$SMTP_SINK_DIR/ready" "$SMTP_PID" 60)" || die "the SMTP sink did not start"
export SMTP_URL="smtp://127.0.0.1:${SMTP_PORT}"
blog "SMTP sink at $SMTP_URL (messages in $SMTP_SINK_DIR)"

blog "starting api and workers (each on a port of its own choosing)"
"$API_BIN" serve >"$LOG_DIR/api.log" 2>&1 &
API_PID=$!
"$WORKERS_BIN" >"$LOG_DIR/workers.log" 2>&1 &
WORKERS_PID=$!

# The address the api bound: its "api listening" line (compact or JSON log format, colours
# stripped). Then /readyz. Generous deadlines: they end as soon as the condition holds.
api_addr() {
    sed 's/\x1b\[[0-9;]*m//g' "$LOG_DIR/api.log" 2>/dev/null | grep -m1 'api listening' |
        grep -oE '(addr=|"addr":")[0-9.]+:[0-9]+' | grep -oE '[0-9.]+:[0-9]+$' || true
}
deadline=$((SECONDS + 120))
until [[ -n "$API_URL" ]]; do
    addr="$(api_addr)"
    if [[ -n "$addr" ]]; then
        API_URL="http://${addr}"
        break
    fi
    kill -0 "$API_PID" 2>/dev/null || die "the api exited during startup"
    ((SECONDS < deadline)) || die "the api did not log its address within 120 s"
    sleep 0.1
done
until curl -fsS -o /dev/null --max-time 5 "$API_URL/readyz"; do
    kill -0 "$API_PID" 2>/dev/null || die "the api exited during startup"
    ((SECONDS < deadline)) || die "the api is not ready after 120 s"
    sleep 0.1
done
kill -0 "$WORKERS_PID" 2>/dev/null || die "the workers exited during startup"
blog "stack ready at $API_URL"

export API_URL API_PID
# The dashboard suite makes its users with the api's CLI, run with this same environment
# (DATABASE_URL, MASTER_KEY, ...) as the api.
export RTOS_API_BIN="$API_BIN"
# e2e.test.mjs runs the analytics rollup with it (`retentionos-workers rollup`).
export RTOS_WORKERS_BIN="$WORKERS_BIN"
blog "dashboard suite (/app against the real API)"
run_suite dashboard.test.mjs
run_suite dashboard-overview.test.mjs
run_suite dashboard-settings.test.mjs
run_suite dashboard-editor.test.mjs
kill -0 "$API_PID" 2>/dev/null || die "the api exited during the dashboard suite"
blog "end-to-end suite (demo page against the real API; scenario d kills the api on purpose)"
run_suite e2e.test.mjs
FAILED=0
