#!/usr/bin/env python3
"""Load-test fixtures (stdlib only).

  fixtures.py setup   BASE TENANT_JSON OUT_JSON   tenant settings, flows, publish, Stripe settings
  fixtures.py tokens  FIXTURES N OUT [PREFIX]     N customer tokens, one per line (distinct customers)
  fixtures.py sessions FIXTURES N OUT             creates N widget sessions: "session_id token" lines
  fixtures.py webhooks FIXTURES N OUT [PREFIX]    N signed webhook deliveries: "signature<TAB>body" lines
  fixtures.py probe   FIXTURES PATH               prints the HTTP status of GET PATH (secret key)

The customer token is base64url_nopad(JSON claims) + "." + hex(HMAC-SHA256(tsk_test, that
string)) (the tenant's test-mode token signing secret, not its sk_ key); the webhook signature is "t=<unix>,v1=" + hex(HMAC-SHA256(whsec, "<t>.<body>")).
"""

import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request

WEBHOOK_SECRET = "whsec_load"

FLOW = {
    "name": "Default",
    "language": "en",
    "is_default": True,
    "steps": [
        {
            "id": "survey",
            "type": "survey",
            "title": "Why are you leaving?",
            "reasons": [
                {"code": "too_expensive", "label": "Too expensive"},
                {"code": "missing_features", "label": "Missing features"},
            ],
        },
        {
            "id": "offer",
            "type": "offer",
            "offers": [
                {
                    "id": "disc20",
                    "type": "discount",
                    "title": "20% off",
                    "discount": {"percent_off": 20, "duration": "repeating", "duration_in_months": 3},
                },
                {"id": "pause2", "type": "pause", "title": "Pause", "pause": {"months": 2}},
            ],
        },
        {"id": "confirm", "type": "confirm", "title": "Confirm"},
    ],
}


def request(base, method, path, key=None, body=None, headers=None, expect=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, text = res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if expect is not None and status not in expect:
        sys.exit(f"fixtures: {method} {path} -> {status} {text[:500]}")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def customer_token(tenant_id, secret, customer, sub=None, ttl=20 * 3600):
    claims = {"tid": tenant_id, "cus": customer, "sub": sub, "exp": int(time.time()) + ttl}
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return payload + "." + sig


def webhook(event_id, sub_id="sub_x", now=None):
    now = int(now or time.time())
    body = json.dumps(
        {
            "id": event_id,
            "type": "customer.subscription.updated",
            "livemode": False,
            "created": now,
            "data": {"object": {"id": sub_id, "object": "subscription"}},
            "request": None,
        },
        separators=(",", ":"),
    )
    sig = hmac.new(WEBHOOK_SECRET.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={now},v1={sig}", body


def signing_secret_of(tenant, mode="test"):
    for s in tenant.get("token_signing_secrets", []):
        if s["mode"] == mode:
            return s["secret"]
    if "token_signing_secrets" not in tenant:
        # A build from before signing secrets (issue 15) signed tokens with the sk_ key; kept
        # so a same-run comparison with such a build (loadtests/RESULTS.md) can still run.
        return key_of(tenant, "secret", mode)
    sys.exit(f"fixtures: tenant has no {mode} token signing secret")


def key_of(tenant, kind, mode="test"):
    for k in tenant["keys"]:
        if k["kind"] == kind and k["mode"] == mode:
            return k["key"]
    sys.exit(f"fixtures: tenant has no {kind} {mode} key")


def setup(base, tenant_json, out):
    tenant = json.load(open(tenant_json))
    sk, pk = key_of(tenant, "secret"), key_of(tenant, "publishable")
    tsk = signing_secret_of(tenant)
    tid = tenant["tenant"]["id"]
    # A high per-tenant limit, so the scenarios measure the service and not the limiter
    # (the overload scenario is about load shedding; see loadtests/README.md).
    status, _ = request(base, "PATCH", "/v1/settings", sk, {"rate_limit_per_second": 1000000})
    if status == 405:  # a build from before PATCH (issue 15), where PUT was partial
        request(base, "PUT", "/v1/settings", sk, {"rate_limit_per_second": 1000000}, expect=(200,))
    elif status != 200:
        sys.exit(f"fixtures: PATCH /v1/settings -> {status}")
    request(
        base, "PUT", "/v1/settings/stripe", sk,
        {"mode": "test", "api_key": "rk_test_load", "webhook_secrets": [WEBHOOK_SECRET]},
        expect=(200,),
    )
    _, flow = request(base, "POST", "/v1/flows", sk, FLOW, expect=(201,))
    request(base, "POST", f"/v1/flows/{flow['id']}/publish", sk, {}, expect=(200, 201))
    draft_body = dict(FLOW, name="Draft (flow builder saves)", is_default=False)
    _, draft = request(base, "POST", "/v1/flows", sk, draft_body, expect=(201,))
    # One session the admin reads can always fetch.
    tok = customer_token(tid, tsk, "cus_fixture")
    _, s = request(base, "POST", "/v1/widget/sessions", pk, {}, {"X-Customer-Token": tok}, expect=(201,))
    fx = {
        "base": base,
        "tenant_id": tid,
        "sk": sk,
        "tsk": tsk,
        "pk": pk,
        "flow_id": flow["id"],
        "draft_flow_id": draft["id"],
        "draft_body": draft_body,
        "session_id": s["session_id"],
        "webhook_secret": WEBHOOK_SECRET,
    }
    json.dump(fx, open(out, "w"), indent=1)


def main():
    cmd = sys.argv[1]
    if cmd == "setup":
        setup(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    fx = json.load(open(sys.argv[2]))
    if cmd == "probe":
        status, _ = request(fx["base"], "GET", sys.argv[3], fx["sk"])
        print(status)
        return
    n, out = int(sys.argv[3]), sys.argv[4]
    prefix = sys.argv[5] if len(sys.argv) > 5 else f"r{int(time.time())}"
    with open(out, "w") as f:
        if cmd == "tokens":
            for i in range(n):
                f.write(customer_token(fx["tenant_id"], fx["tsk"], f"cus_{prefix}_{i}") + "\n")
        elif cmd == "webhooks":
            for i in range(n):
                # 1,000 distinct subscriptions: the worker serialises per subscription.
                sig, body = webhook(f"evt_{prefix}_{i}", f"sub_load_{i % 1000}")
                f.write(f"{sig}\t{body}\n")
        elif cmd == "sessions":
            for i in range(n):
                tok = customer_token(fx["tenant_id"], fx["tsk"], f"cus_{prefix}_s{i}")
                _, s = request(
                    fx["base"], "POST", "/v1/widget/sessions", fx["pk"], {},
                    {"X-Customer-Token": tok}, expect=(201,),
                )
                f.write(f"{s['session_id']} {tok}\n")
        else:
            sys.exit(f"fixtures: unknown command {cmd}")


if __name__ == "__main__":
    main()
