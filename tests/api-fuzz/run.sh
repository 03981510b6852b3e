#!/usr/bin/env bash
#
# tests/api-fuzz/run.sh: fuzzes the HTTP API with Schemathesis (property-based testing from the
# OpenAPI document) against a stack of its own, with every check on.
#
#   tests/api-fuzz/run.sh                    the whole document
#   tests/api-fuzz/run.sh -- <st run args>   extra arguments for `st run`, e.g.
#                                            `-- --include-path-regex '^/v1/flows'`
#
# 1. Schemathesis 4.32.5 in its own virtualenv (scripts/lib.sh ensure_schemathesis:
#    /var/tmp/rtos-schemathesis, created and pip-installed once, reused afterwards);
# 2. a stack as tests/browser/run.sh makes it: builds retentionos-api, retentionos-workers and
#    rtos-stripe-sandbox (skipped with RTOS_FUZZ_NO_BUILD=1), a fresh database
#    rtos_fuzz_<random> (`retentionos-api migrate`), REDIS_PREFIX=rtos_fuzz:<random>:, the
#    Stripe sandbox (STRIPE_API_BASE of the api and workers), the "Demo" tenant connected to it
#    (`retentionos-api demo --stripe-sandbox`: a published test flow), the api and the workers
#    on ports they bind themselves (port 0; the api's address is read from its log); waits for
#    /readyz;
# 3. credentials for each security scheme of the document, given to Schemathesis per scheme
#    (schemathesis.toml, [auth.openapi.<scheme>], from the environment variables named there):
#      secretKey       the Demo tenant's sk_test_ key (in `demo`'s output: the database is
#                      fresh, so `demo` creates the tenant and prints its keys once)
#                      -> RTOS_FUZZ_SECRET_KEY
#      opsToken        OPS_TOKEN, a random one given to the api -> RTOS_FUZZ_OPS_TOKEN
#      publishableKey  the pk_test_ key `demo` issues -> RTOS_FUZZ_PUBLISHABLE_KEY
#      customerToken   X-Customer-Token for cus_demo_fuzz / sub_demo_fuzz (a sandbox
#                      subscription), 24 h, minted by POST /v1/widget_tokens with the secret
#                      key -> RTOS_FUZZ_CUSTOMER_TOKEN
#    The widget operations need publishableKey AND customerToken; Schemathesis sends both.
#    dashboardSession and opsSession (the /app cookies, which also need a CSRF token) get no
#    credential: the dashboard and ops console are fuzzed signed out, where every route must
#    answer 3xx/4xx (a redirect to the sign-in page, 401, 403 csrf), never 5xx. Redirects are
#    not followed (max-redirects = 0). The ignored_auth check sends each operation without and
#    with wrong credentials too.
# 4. `st run <api>/openapi.json` (the document the running api serves, whatever it is) with
#    --checks all, every phase (examples, coverage, fuzzing, stateful), --max-examples
#    RTOS_FUZZ_MAX_EXAMPLES per operation and phase, a fixed seed (RTOS_FUZZ_SEED, printed),
#    RTOS_FUZZ_WORKERS workers, the budget bounded by RTOS_FUZZ_TIMEOUT_SECS. Reports in
#    RTOS_FUZZ_REPORT_DIR: junit.xml and output.txt (the console output: each failure with its
#    curl reproduction). The run fails when Schemathesis reports any failure or error.
#    SCHEMATHESIS_HOOKS=tests/api-fuzz/hooks.py (absolute path; loaded as a file, so no
#    PYTHONPATH): its map_case hook repairs POSITIVE cases only, for rules no document can
#    express (its docstring lists each rule and its repair), so that positive_data_acceptance
#    ("a schema-valid request is accepted") holds the server to the document:
#      every JSON body   a whole float (2.0, which JSON Schema counts as an integer and
#                        Schemathesis sends on purpose) is written as an integer (2), which
#                        is what the API reads for integer fields;
#      POST /v1/flows, PUT /v1/flows/{id}  the flow definition's cross-field rules
#                        (shared/src/flows/validate.rs): unique step ids, reason codes, offer
#                        ids and variant keys; offer reason_codes and variant offer_ids that
#                        name the flow's own; an offer's settings of its own type only; the
#                        discount's shape; a targeting value that suits its operator; and no
#                        control character (shared/src/text.rs) nor integer beyond 1e308 in
#                        the free-form `custom` and rule `value`;
#      PUT /v1/settings/stripe  `mode` "test" (a key manages its own mode's settings only;
#                        the harness' key is a test key) and an api_key of that mode.
#    Negative cases are sent as generated. What a document can state is not repaired: a
#    schema-valid request refused for it is a finding (fix the document or the server).
#
# Not fuzzed (schemathesis.toml, [[operations]] enabled = false), because they would destroy
# the harness' own credentials in the middle of the run:
#   POST /v1/keys/rotate                   retires the sk_test_/pk_test_ key in use (grace 0)
#   DELETE /v1/keys/{id}                   revokes a key; the stateful phase learns the ids of
#                                          the keys in use from GET /v1/keys
#   POST /v1/token_signing_secrets/rotate  retires the secret that signed the customer token,
#                                          so every widget call would get 401
# Fuzzed with two fields pinned: PUT and PATCH /v1/settings always carry
# `rate_limit_per_second: 0` (the platform's default; a generated 1 would throttle every later
# request of the tenant with 429 and leave the rest of the run untested) and `timezone:
# "Europe/Paris"` (an IANA zone PostgreSQL knows, a list no pattern holds: anything else is a
# right 400), and skip the coverage phase, which does not apply pinned values.
# Fuzzed with one expectation widened, as no document can make them pass otherwise:
#   /app/*  (signed out) a 303 to the sign-in page counts as rejecting invalid input
#           (negative_data_rejection): the redirect comes before any validation, as the
#           401 of an API route does;
#   POST /v1/webhooks/stripe/{tenant_id}  a 400 counts as a right answer to a schema-valid
#           delivery (positive_data_acceptance): no generator signs its body with the tenant's
#           webhook secret, and an unsigned delivery is a 400; garbage must still get a 4xx;
#   GET /v1/analytics/(summary|offers|timeseries|churn-reasons)  a 400 counts as a right
#           answer to a schema-valid request (positive_data_acceptance): `from` must be
#           before `to`, the range at most 2 years (31 days with interval=hour), rules that
#           relate two parameters.
# Everything else is fuzzed with every check, destructive or not (DELETE /v1/flows/{id},
# DELETE /v1/customers/{id}, the dead-letter purges, POST /v1/tenants, POST /v1/ops/probes,
# ...): the stack is throwaway. The credentials being test-mode ones, POST
# /v1/flows/{id}/copy_to_live (a live key only) answers 403 live_key_required past its input
# checks (Schemathesis warns about it; not a failure).
# After the run, the secret key must still read the settings, with rate_limit_per_second
# still 0, and the widget credentials must not get a 401: a document change that lets an
# excluded or pinned operation through (e.g. a renamed path) fails the run there, instead of
# leaving it silently hollow.
# Failures still reported at the time of writing (seed 1; real mismatches, to fix in the
# document or the server, not in this harness):
#   POST /v1/flows, PUT /v1/flows/{id}  400 "strings.<k> must not be empty": the server wants
#           each `strings` value non-blank and at most 300 characters; the document says any
#           string (FlowDefinition.strings needs minLength/maxLength/pattern on its values);
#   POST /v1/flows  500: a double near the largest one (1.7976931348623157e308) in `custom`
#           is accepted, but the jsonb read back (RETURNING) spells it as a 309-digit integer
#           that serde_json cannot read ("number out of range");
#   POST /app/set-password  400 for a password under 10 or over 256 characters (or with a
#           control character): the form's `password` carries no minLength/maxLength/pattern
#           (a wrong token is a 404, which positive_data_acceptance allows);
#   POST /v1/widget/sessions/{id}/events  400 "reason_selected needs reason_code", "offer
#           events need offer_id" (stateful): which fields an event needs depends on its
#           `type`, which the document could say (a oneOf per type) and does not (that
#           reason_code/offer_id must be one of the session's flow is state no document
#           holds: a 400 there will then need an allowance).
#
# On exit (success, failure or interrupt) it stops the processes it started, drops its database
# and deletes its Redis keys; the logs are printed on failure.
#
# Environment: CARGO_TARGET_DIR (default /var/tmp/retentionos-target), RTOS_FUZZ_NO_BUILD=1
# (use the binaries as built), RTOS_FUZZ_MAX_EXAMPLES (default 30), RTOS_FUZZ_SEED (default
# 1; `random` draws one), RTOS_FUZZ_WORKERS (default 1), RTOS_FUZZ_TIMEOUT_SECS (default 900:
# Schemathesis is killed, and the run fails, after that), RTOS_FUZZ_REPORT_DIR (default
# /tmp/rtos-fuzz-report, emptied first), RTOS_FUZZ_KEEP_LOGS=1 (keep the api/worker logs),
# RTOS_SCHEMATHESIS_VENV (see ensure_schemathesis).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ST_ARGS=()
case "${1:-}" in
    "") ;;
    --)
        shift
        ST_ARGS=("$@")
        ;;
    -h | --help)
        awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"
        exit 0
        ;;
    *)
        echo "usage: $0 [-- <st run args>]" >&2
        exit 2
        ;;
esac

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
flog() { log "fuzz: $*"; }

MAX_EXAMPLES="${RTOS_FUZZ_MAX_EXAMPLES:-30}"
SEED="${RTOS_FUZZ_SEED:-1}"
WORKERS="${RTOS_FUZZ_WORKERS:-1}"
TIMEOUT_SECS="${RTOS_FUZZ_TIMEOUT_SECS:-900}"
REPORT_DIR="${RTOS_FUZZ_REPORT_DIR:-/tmp/rtos-fuzz-report}"
if [[ "$SEED" == random ]]; then
    SEED="$(od -An -N4 -tu4 /dev/urandom | tr -d ' \n')"
fi
for v in MAX_EXAMPLES SEED WORKERS TIMEOUT_SECS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "RTOS_FUZZ_$v must be a whole number, not '${!v}'"
done

ensure_schemathesis
PYTHON="$(dirname "$SCHEMATHESIS_ST")/python"
# The hooks (hooks.py: the repair of positive flow and Stripe-settings bodies, see its
# docstring), by absolute path: `st` runs from LOG_DIR, and a path is loaded as a file
# (no PYTHONPATH needed).
export SCHEMATHESIS_HOOKS="$HERE/hooks.py"
[[ -f "$SCHEMATHESIS_HOOKS" ]] || die "missing $SCHEMATHESIS_HOOKS"
flog "$("$SCHEMATHESIS_ST" --version) ($SCHEMATHESIS_ST)"

# ---------------------------------------------------------------------------------------
# The stack: fresh database, own Redis prefix, Stripe sandbox, api + workers on free ports
# (as tests/browser/run.sh)
# ---------------------------------------------------------------------------------------
command -v psql >/dev/null 2>&1 || die "psql is required (apt-get install postgresql-client)"
command -v curl >/dev/null 2>&1 || die "curl is required"

RAND="$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')"
DB_NAME="rtos_fuzz_${RAND}"
ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB_NAME}"
export REDIS_URL="redis://127.0.0.1:6379"
export REDIS_PREFIX="rtos_fuzz:${RAND}:"
OPS_TOKEN="fuzz-ops-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export OPS_TOKEN
export DEMO_ENABLED=true # shared::Config parses a bool (true/false)
export APP_ENV=development
# Mail (password resets, invitations) is written to the api's log.
unset DATABASE_READ_URL READ_DATABASE_URL SMTP_URL 2>/dev/null || true

# Port 0: each process binds a port of the kernel's choosing; the api's address comes from its log.
export API_ADDR="127.0.0.1:0"
export WORKER_METRICS_ADDR="127.0.0.1:0"
API_URL=""

LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rtos-fuzz.XXXXXX")"
API_PID=""
WORKERS_PID=""
SANDBOX_PID=""
ST_PID=""
TAIL_PID=""
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
            flog "$name did not stop on SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    stop_pid "$ST_PID" schemathesis
    stop_pid "$TAIL_PID" tail
    stop_pid "$WORKERS_PID" workers
    stop_pid "$API_PID" api
    stop_pid "$SANDBOX_PID" stripe-sandbox
    if ((rc != 0 || FAILED)); then
        for f in api workers migrate stripe-sandbox demo; do
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
    if [[ "${RTOS_FUZZ_KEEP_LOGS:-0}" == 1 ]]; then
        flog "logs kept in $LOG_DIR"
    else
        rm -rf "$LOG_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_postgres
ensure_redis

TARGET="${CARGO_TARGET_DIR:-${RTOS_TARGET_DIR:-/var/tmp/retentionos-target}}"
API_BIN="$TARGET/debug/retentionos-api"
WORKERS_BIN="$TARGET/debug/retentionos-workers"
SANDBOX_BIN="$TARGET/debug/rtos-stripe-sandbox"
if [[ "${RTOS_FUZZ_NO_BUILD:-0}" != 1 ]]; then
    # shellcheck disable=SC2119 # no components needed, just cargo on PATH
    ensure_rust_tools
    flog "cargo build --bins -p retentionos-api -p retentionos-workers, --bin rtos-stripe-sandbox"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build -p retentionos-api -p retentionos-workers -p retentionos-tests \
        --bin retentionos-api --bin retentionos-workers --bin rtos-stripe-sandbox)
fi
[[ -x "$API_BIN" && -x "$WORKERS_BIN" ]] || die "missing $API_BIN or $WORKERS_BIN"
[[ -x "$SANDBOX_BIN" ]] || die "missing $SANDBOX_BIN (cargo build -p retentionos-tests --bin rtos-stripe-sandbox)"

flog "database $DB_NAME: retentionos-api migrate"
DB_CREATED=1
"$API_BIN" migrate >"$LOG_DIR/migrate.log" 2>&1 || die "retentionos-api migrate failed"

flog "starting the Stripe sandbox (rtos-stripe-sandbox)"
STRIPE_SANDBOX_ADDR=127.0.0.1:0 "$SANDBOX_BIN" --url-file "$LOG_DIR/stripe-sandbox.url" \
    >/dev/null 2>"$LOG_DIR/stripe-sandbox.log" &
SANDBOX_PID=$!
STRIPE_API_BASE="$(wait_for_url_file "$LOG_DIR/stripe-sandbox.url" "$SANDBOX_PID" 60)" ||
    die "the Stripe sandbox did not start"
export STRIPE_API_BASE
flog "Stripe sandbox at $STRIPE_API_BASE"

# The Demo tenant, connected to the sandbox. The database is fresh, so `demo` creates the
# tenant and prints its four keys once (new_tenant_keys; its pk_test_ there is already
# replaced by the fresh publishable_key).
"$API_BIN" demo --stripe-sandbox >"$LOG_DIR/demo.json" 2>"$LOG_DIR/demo.log" ||
    die "retentionos-api demo --stripe-sandbox failed"
# Its output, one value a line: tenant id, fresh pk_test_, the new tenant's sk_test_ (each
# line empty when missing), then whether test mode is connected to the sandbox.
demo_values="$("$PYTHON" -c '
import json, sys
j = json.load(open(sys.argv[1]))
keys = j.get("new_tenant_keys") or []
print(j.get("tenant_id") or "")
print(j.get("publishable_key") or "")
print(next((k["key"] for k in keys if k.get("key", "").startswith("sk_test_")), ""))
print((j.get("stripe") or {}).get("connected") in ("sandbox", "kept"))
' "$LOG_DIR/demo.json")" || die "cannot read demo's output: $(cat "$LOG_DIR/demo.json")"
{
    read -r DEMO_TENANT_ID
    read -r RTOS_FUZZ_PUBLISHABLE_KEY
    read -r RTOS_FUZZ_SECRET_KEY
    read -r demo_connected
} <<<"$demo_values"
[[ "$demo_connected" == True ]] ||
    die "the demo command did not connect the demo tenant to the sandbox: $(cat "$LOG_DIR/demo.json")"
[[ -n "$DEMO_TENANT_ID" && "$RTOS_FUZZ_PUBLISHABLE_KEY" == pk_test_* ]] ||
    die "no tenant_id or pk_test_ key in demo's output: $(cat "$LOG_DIR/demo.json")"
[[ "$RTOS_FUZZ_SECRET_KEY" == sk_test_* ]] ||
    die "demo printed no sk_test_ key (the database is fresh: it should have created the tenant)"
RTOS_FUZZ_OPS_TOKEN="$OPS_TOKEN"
export RTOS_FUZZ_PUBLISHABLE_KEY RTOS_FUZZ_SECRET_KEY RTOS_FUZZ_OPS_TOKEN
flog "Demo tenant $DEMO_TENANT_ID"

flog "starting api and workers (each on a port of its own choosing)"
"$API_BIN" serve >"$LOG_DIR/api.log" 2>&1 &
API_PID=$!
"$WORKERS_BIN" >"$LOG_DIR/workers.log" 2>&1 &
WORKERS_PID=$!

# The address the api bound: its "api listening" line (compact or JSON log format, colours
# stripped). Then /readyz.
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
flog "stack ready at $API_URL"

# The customer token, signed by the api with the tenant's test signing secret.
curl -fsS --max-time 10 -X POST "$API_URL/v1/widget_tokens" \
    -H "Authorization: Bearer $RTOS_FUZZ_SECRET_KEY" -H 'Content-Type: application/json' \
    -d '{"customer_id": "cus_demo_fuzz", "subscription_id": "sub_demo_fuzz", "expires_in": 86400}' \
    >"$LOG_DIR/widget_token.json" || die "POST /v1/widget_tokens failed"
RTOS_FUZZ_CUSTOMER_TOKEN="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' "$LOG_DIR/widget_token.json")" ||
    die "no token in POST /v1/widget_tokens' answer: $(cat "$LOG_DIR/widget_token.json")"
export RTOS_FUZZ_CUSTOMER_TOKEN
# Sanity check of the widget credentials: a session starts (the Demo flow is published).
status="$(curl -sS -o "$LOG_DIR/session.json" -w '%{http_code}' --max-time 10 -X POST "$API_URL/v1/widget/sessions" \
    -H "Authorization: Bearer $RTOS_FUZZ_PUBLISHABLE_KEY" -H "X-Customer-Token: $RTOS_FUZZ_CUSTOMER_TOKEN" \
    -H 'Content-Type: application/json' -d '{}')"
[[ "$status" == 201 ]] ||
    die "POST /v1/widget/sessions with the harness' credentials answered $status: $(cat "$LOG_DIR/session.json")"

# ---------------------------------------------------------------------------------------
# Schemathesis
# ---------------------------------------------------------------------------------------
rm -rf "$REPORT_DIR"
mkdir -p "$REPORT_DIR"
flog "st run $API_URL/openapi.json: --max-examples $MAX_EXAMPLES --seed $SEED --workers $WORKERS (reports in $REPORT_DIR)"
st_rc=0
# In the background, from LOG_DIR (nothing Schemathesis might write lands in the checkout):
# bash runs a trap only once its foreground command is done, but `wait` returns on a
# signal, so an interrupt stops the run (cleanup stops Schemathesis) instead of waiting for
# it. The console output goes to output.txt and, through tail, to this script's stdout.
(
    cd "$LOG_DIR"
    exec timeout --kill-after=30 "$TIMEOUT_SECS" "$SCHEMATHESIS_ST" --config-file "$HERE/schemathesis.toml" \
        run "$API_URL/openapi.json" --url "$API_URL" \
        --checks all \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --workers "$WORKERS" \
        --report junit --report-junit-path "$REPORT_DIR/junit.xml" \
        --no-color \
        ${ST_ARGS[@]+"${ST_ARGS[@]}"}
) >"$REPORT_DIR/output.txt" 2>&1 </dev/null &
ST_PID=$!
tail -n +1 -f --pid="$ST_PID" "$REPORT_DIR/output.txt" &
TAIL_PID=$!
wait "$ST_PID" || st_rc=$?
ST_PID=""
wait "$TAIL_PID" || true
TAIL_PID=""
if ((st_rc == 124 || st_rc == 137)); then
    die "Schemathesis did not finish within ${TIMEOUT_SECS} s (RTOS_FUZZ_TIMEOUT_SECS)"
fi
kill -0 "$API_PID" 2>/dev/null || die "the api exited during the fuzzing"
# The run tested what it meant to only if the harness' tenant kept its credentials and its
# rate limit (see the exclusions above): a change of the document or of Schemathesis that
# lets an excluded or pinned operation through shows here, not as a silently hollow run.
status="$(curl -sS -o "$LOG_DIR/settings.json" -w '%{http_code}' --max-time 10 "$API_URL/v1/settings" \
    -H "Authorization: Bearer $RTOS_FUZZ_SECRET_KEY")"
[[ "$status" == 200 ]] ||
    die "after the fuzzing, GET /v1/settings with the harness' secret key answered $status: $(cat "$LOG_DIR/settings.json")"
rate="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("rate_limit_per_second"))' "$LOG_DIR/settings.json")"
[[ "$rate" == 0 ]] ||
    die "the fuzzing changed the harness tenant's rate_limit_per_second to $rate (see schemathesis.toml): later requests were throttled"
# The flows may be gone (DELETE /v1/flows/{id} is fuzzed), so any answer but a 401 will do.
status="$(curl -sS -o "$LOG_DIR/session.json" -w '%{http_code}' --max-time 10 -X POST "$API_URL/v1/widget/sessions" \
    -H "Authorization: Bearer $RTOS_FUZZ_PUBLISHABLE_KEY" -H "X-Customer-Token: $RTOS_FUZZ_CUSTOMER_TOKEN" \
    -H 'Content-Type: application/json' -d '{}')"
[[ "$status" != 401 && "$status" != 000 ]] ||
    die "after the fuzzing, the harness' widget credentials were refused ($status): $(cat "$LOG_DIR/session.json")"
if ((st_rc != 0)); then
    die "Schemathesis reported failures (exit $st_rc; seed $SEED): see $REPORT_DIR/output.txt and $REPORT_DIR/junit.xml"
fi
flog "no failures (seed $SEED); reports in $REPORT_DIR"
FAILED=0
