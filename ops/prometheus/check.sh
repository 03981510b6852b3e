#!/usr/bin/env bash
# ops/prometheus/check.sh: validates the ops kit with promtool.
#
#   1. promtool check rules   recording.yml alerts.yml (YAML, PromQL syntax, lint)
#   2. promtool test rules    tests.yml (the alerts fire on synthetic series as intended)
#   3. promtool check config  prometheus.yml (the example scrape config and its rule files)
#   4. every PromQL expression of ../grafana/retentionos-dashboard.json, with the Grafana
#      variables substituted, as a throwaway rule file through `promtool check rules`
#
# promtool ships in Debian's `prometheus` package: apt-get install -y prometheus
# (on a systemd machine that package also starts a Prometheus server; stop it with
# `systemctl disable --now prometheus` if you only want promtool).
# Whether the expressions name only metrics the services export is checked by
# tests/tests/ops_kit.rs against a real scrape (cargo test -p retentionos-tests --test ops_kit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v promtool >/dev/null 2>&1; then
    echo "check.sh: promtool not found. Install it with: apt-get install -y prometheus" >&2
    exit 1
fi

promtool check rules recording.yml alerts.yml
promtool test rules tests.yml
promtool check config prometheus.yml

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 - ../grafana/retentionos-dashboard.json "$tmp/dashboard-rules.yml" <<'EOF'
import json, re, sys

dash = json.load(open(sys.argv[1]))
exprs = []

def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "expr" and isinstance(x, str):
                exprs.append(x)
            else:
                walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)

walk(dash.get("panels", []))
if len(exprs) < 20:
    sys.exit(f"only {len(exprs)} expressions found in the dashboard")

def substitute(e):
    e = e.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", e)

with open(sys.argv[2], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        f.write(f"      - record: dashboard:expr_{i}\n        expr: {json.dumps(substitute(e))}\n")
print(f"dashboard: {len(exprs)} expressions")
EOF
promtool check rules "$tmp/dashboard-rules.yml"
echo "ops kit: all checks passed"
