"""tests/api-fuzz/hooks.py: the Schemathesis 4 hooks of tests/api-fuzz/run.sh (loaded through
SCHEMATHESIS_HOOKS, which run.sh exports).

One `map_case` hook, in every phase (coverage, fuzzing, stateful). It touches POSITIVE cases
only (`case.meta.generation.mode`: a request Schemathesis generated to be schema-valid, which
the check positive_data_acceptance then expects the server to accept); a negative case, or a
case without metadata, is sent exactly as generated. In a positive case it repairs what the
server rightly refuses for a rule the document cannot state, so that a refusal of a repaired
request means a real mismatch between the document and the server:

A. Every JSON body: a float of no fractional part (`2.0`) is written as an integer (`2`).
   JSON Schema counts `2.0` as an integer (`type: integer` admits it and no keyword tells
   the two spellings apart), and Schemathesis sends such floats for integers on purpose;
   the API, like serde, reads integers written as integers only (400 "invalid type:
   floating point `2.0`, expected u32"). The values are the same numbers.

B. POST /v1/flows and PUT /v1/flows/{id} (a FlowDefinition): the rules of
   shared/src/flows/validate.rs and shared/src/text.rs that JSON Schema cannot express,
   because they relate values in different places of the document or depend on a sibling's
   value, or concern the free-form (`{}`) values:
   1. no control characters (shared/src/text.rs): a string or object key is refused when
      it carries U+0000-U+001F, U+007F or U+0080-U+009F, except tab, LF and CR in free text
      (a string under a key of text::FREE_TEXT_FIELDS, or anywhere below `strings` or
      `custom`); keys are never free text. The document's patterns say so for the typed
      fields; an offer's `custom` payload and a targeting rule's `value` are any JSON, where
      a schema cannot say "no control character in any string or key at any depth" and
      still let any value through. Repair: the characters are removed (a key made equal to
      a sibling's gets `_2`, `_3`, ...). In the same walk an integer beyond +-1e308 (which
      serde_json cannot read: 400 malformed_json "number out of range") becomes +-1e308;
   2. step ids unique across the flow;
   3. reason codes unique across the flow's surveys;
   4. offer ids unique across the flow's offer steps;
   5. experiment variant keys unique
      (2-5: `uniqueItems` compares whole items, not one field of them, let alone across
      steps. Repair: a repeated id/code/key gets the suffix `-2`, `-3`, ... (the first
      unused one; the stem is shortened to stay within 64 characters));
   6. an offer's `reason_codes` name reason codes of the flow's surveys, and a variant's
      `offer_ids` name offers of the flow (references into other parts of the document).
      Repair: the k-th dangling reference becomes the (k mod n)-th code/offer id of the
      flow (document order), so references stay exercised; with nothing to name (no survey
      reason, no offer) the dangling ones are dropped;
   7. an offer carries exactly the settings object of its own `type` (discount, pause,
      plan_change, trial_extension, redirect; `custom` is optional for custom) and no other
      (a property required or forbidden by a sibling's value). Repair: when the own
      settings are missing but another type's are there, the type becomes the first of
      those (order discount, pause, plan_change, trial_extension, redirect, custom), so the
      generated settings are kept; with none there, minimal settings of the type are added
      ({"percent_off": 10, "duration": "once"}, {"months": 1}, {"price_id": "price_fuzz"},
      {"days": 7}, {"url": "https://example.com/"}); then the other types' settings are
      removed (null counts as absent, as serde reads it);
   8. a discount is `coupon_id` alone (percent_off/amount_off removed), or exactly one of
      `percent_off` (then no `currency`) / `amount_off` + `currency` (percent_off wins when
      both are there; currency "usd" is added to a lone amount_off; with neither, amount_off
      100 when there is a currency, percent_off 10 otherwise); and `duration` once|forever
      without `duration_in_months`, or repeating with it (1 when missing; a missing duration
      becomes repeating when there are months, once otherwise);
   9. a targeting rule's `value` suits its `op`: in/not_in a non-empty list (a lone non-null
      value is wrapped in one; null or [] becomes ["fuzz"]), gt/gte/lt/lte a number (0
      otherwise), eq/neq a non-null scalar (a list's first scalar, "fuzz" otherwise),
      exists anything.

C. PUT /v1/settings/stripe: a key manages the Stripe settings of its own mode only (`mode`
   must be the presenting key's mode, which no document can know; the harness' secret key
   is a test key), and `api_key` must be a Stripe key of that mode (rk_test_/sk_test_ for
   test). Repair: `mode` becomes "test", and an rk_live_/sk_live_ prefix of `api_key`
   becomes rk_test_/sk_test_ (same length). Here rather than as a schemathesis.toml
   `parameters` pin because the coverage phase does not apply pins (it would have to be off
   for the operation, as it is for /v1/settings), and the api_key prefix follows the mode.

The repair is minimal (what already satisfies a rule is left as it is), deterministic (a pure
function of the generated body: a run still depends on its seed only) and keeps the body
valid against the document (Schemathesis revalidates a changed case: a repair that broke the
schema would relabel the case negative, and show up as ST201). What the document can state
(lengths, patterns, ranges, enums, required, additionalProperties) is left to the document: a
schema-valid body the server refuses for such a rule is a finding to fix in the document or
the server, not something to repair here (e.g. the values of a flow's `strings`, which the
server wants non-blank and at most 300 characters).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import schemathesis
from schemathesis import GenerationMode

# --- text hygiene (a port of shared/src/text.rs) -------------------------------------------

FREE_TEXT_FIELDS = frozenset(
    ["text", "title", "body", "description", "label", "placeholder", "follow_up", "cta", "message"]
)
FREE_TEXT_CONTAINERS = frozenset(["strings", "custom"])


# serde_json reads an integer beyond 64 bits as a double, and refuses one its (fast, not
# correctly rounded) parser takes beyond the largest double, ~1.8e308: "number out of range",
# 400 malformed_json. Such integers (Python's are unbounded) become +-1e308, which it reads
# exactly. Floats are left alone: a JSON double is never beyond the largest one.
NUMBER_MAX = 10**308


def _allowed(c: str, free_text: bool) -> bool:
    o = ord(c)
    control = o <= 0x1F or 0x7F <= o <= 0x9F
    return not control or (free_text and c in "\t\n\r")


def _clean_text(s: str, free_text: bool) -> str:
    if all(_allowed(c, free_text) for c in s):
        return s
    return "".join(c for c in s if _allowed(c, free_text))


def _strip_controls(v: Any, free_field: bool = False, free_tree: bool = False) -> Any:
    """`v` without the characters text::find_control refuses (same walk, same free-text rule),
    and with every integer within +-1e308 (NUMBER_MAX)."""
    if isinstance(v, str):
        return _clean_text(v, free_field or free_tree)
    if isinstance(v, list):
        return [_strip_controls(item, free_field, free_tree) for item in v]
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for key, item in v.items():
            k = _clean_text(key, False)
            if k != key and k in v:
                # Cleaning made it equal to a key that is there already.
                k = _unique_key(k, set(v) | set(out))
            elif k in out:
                k = _unique_key(k, set(v) | set(out))
            out[k] = _strip_controls(
                item, k in FREE_TEXT_FIELDS, free_tree or k in FREE_TEXT_CONTAINERS
            )
        return out
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > NUMBER_MAX:
        return NUMBER_MAX if v > 0 else -NUMBER_MAX
    return v


def _unique_key(k: str, taken: set[str]) -> str:
    n = 2
    while f"{k}_{n}" in taken:
        n += 1
    return f"{k}_{n}"


# --- identifiers -----------------------------------------------------------------------------

ID_MAX = 64  # ^[A-Za-z0-9_-]{1,64}$


def _suffixed(value: str, taken: set[str]) -> str:
    """The first `<stem>-<n>` (n = 2, 3, ...) not in `taken`, at most ID_MAX characters."""
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = value[: ID_MAX - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _make_unique(items: list[dict], field: str) -> None:
    """Renames repeated `item[field]` values (the first occurrence keeps its value)."""
    taken = {item[field] for item in items if isinstance(item.get(field), str)}
    seen: set[str] = set()
    for item in items:
        value = item.get(field)
        if not isinstance(value, str):
            continue
        if value in seen:
            value = _suffixed(value, taken)
            taken.add(value)
            item[field] = value
        seen.add(value)


def _rewrite_references(refs: list, known: list[str]) -> list:
    """`refs` with each dangling reference (k-th item) replaced by known[k % len(known)], or
    dropped when nothing is known."""
    names = set(known)
    if all(r in names for r in refs):
        return refs
    if not known:
        return [r for r in refs if r in names]
    return [r if r in names else known[k % len(known)] for k, r in enumerate(refs)]


# --- offers ----------------------------------------------------------------------------------

SETTINGS = ("discount", "pause", "plan_change", "trial_extension", "redirect", "custom")
DEFAULT_SETTINGS: dict[str, dict] = {
    "discount": {"percent_off": 10, "duration": "once"},
    "pause": {"months": 1},
    "plan_change": {"price_id": "price_fuzz"},
    "trial_extension": {"days": 7},
    "redirect": {"url": "https://example.com/"},
}


def _present(obj: dict, key: str) -> bool:
    # serde reads a null Option as None: absent.
    return obj.get(key) is not None


def _fix_offer_settings(offer: dict) -> None:
    kind = offer.get("type")
    if kind not in SETTINGS:
        return
    if kind != "custom" and not _present(offer, kind):
        present = [k for k in SETTINGS if _present(offer, k)]
        if present:
            kind = present[0]
            offer["type"] = kind
        else:
            offer[kind] = copy.deepcopy(DEFAULT_SETTINGS[kind])
    for k in SETTINGS:
        if k != kind and _present(offer, k):
            del offer[k]
    if kind == "discount" and isinstance(offer.get("discount"), dict):
        _fix_discount(offer["discount"])


def _fix_discount(d: dict) -> None:
    if _present(d, "coupon_id"):
        for k in ("percent_off", "amount_off"):
            if _present(d, k):
                del d[k]
        return
    if _present(d, "percent_off") and _present(d, "amount_off"):
        del d["amount_off"]
    if _present(d, "percent_off"):
        if _present(d, "currency"):
            del d["currency"]
    elif _present(d, "amount_off"):
        if not _present(d, "currency"):
            d["currency"] = "usd"
    elif _present(d, "currency"):
        d["amount_off"] = 100
    else:
        d["percent_off"] = 10
    duration = d.get("duration")
    if duration in ("once", "forever"):
        if _present(d, "duration_in_months"):
            del d["duration_in_months"]
    elif duration == "repeating":
        if not _present(d, "duration_in_months"):
            d["duration_in_months"] = 1
    else:
        d["duration"] = "repeating" if _present(d, "duration_in_months") else "once"


# --- targeting -------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool))


def _fix_rule(rule: dict) -> None:
    op = rule.get("op")
    value = rule.get("value")  # absent reads as null
    if op in ("in", "not_in"):
        if isinstance(value, list) and value:
            return
        rule["value"] = ["fuzz"] if value is None or value == [] else [value]
    elif op in ("gt", "gte", "lt", "lte"):
        if not _is_number(value):
            rule["value"] = 0
    elif op in ("eq", "neq"):
        if value is None or not _is_scalar(value):
            scalars = [v for v in value if _is_scalar(v)] if isinstance(value, list) else []
            rule["value"] = scalars[0] if scalars else "fuzz"


# --- the flow --------------------------------------------------------------------------------


def repair_flow(body: dict) -> dict:
    """A copy of the schema-valid flow definition `body` that also satisfies rules 1-9 above."""
    flow = _strip_controls(copy.deepcopy(body))
    steps = [s for s in flow.get("steps") or [] if isinstance(s, dict)]
    _make_unique(steps, "id")

    reasons = [
        r
        for s in steps
        if s.get("type") == "survey"
        for r in s.get("reasons") or []
        if isinstance(r, dict)
    ]
    _make_unique(reasons, "code")
    codes = [r["code"] for r in reasons if isinstance(r.get("code"), str)]

    offers = [
        o
        for s in steps
        if s.get("type") == "offer"
        for o in s.get("offers") or []
        if isinstance(o, dict)
    ]
    _make_unique(offers, "id")
    offer_ids = [o["id"] for o in offers if isinstance(o.get("id"), str)]
    for offer in offers:
        _fix_offer_settings(offer)
        if isinstance(offer.get("reason_codes"), list):
            offer["reason_codes"] = _rewrite_references(offer["reason_codes"], codes)

    experiment = flow.get("experiment")
    if isinstance(experiment, dict):
        variants = [v for v in experiment.get("variants") or [] if isinstance(v, dict)]
        _make_unique(variants, "key")
        for variant in variants:
            if isinstance(variant.get("offer_ids"), list):
                variant["offer_ids"] = _rewrite_references(variant["offer_ids"], offer_ids)

    for rule in flow.get("targeting") or []:
        if isinstance(rule, dict):
            _fix_rule(rule)
    return flow


# --- Stripe settings -------------------------------------------------------------------------

HARNESS_KEY_MODE = "test"  # run.sh's RTOS_FUZZ_SECRET_KEY is an sk_test_ key


def repair_stripe_settings(body: dict) -> dict:
    out = dict(body)
    out["mode"] = HARNESS_KEY_MODE
    key = out.get("api_key")
    if isinstance(key, str):
        for prefix in ("rk_", "sk_"):
            if key.startswith(prefix + "live_"):
                out["api_key"] = prefix + "test_" + key[len(prefix + "live_") :]
    return out


# --- whole floats ----------------------------------------------------------------------------


# Schemathesis spells integers as floats within +-2**53 (where a double holds every integer);
# a larger float stays a float (as an integer literal serde_json might not read it back).
WHOLE_FLOAT_MAX = 2**53


def _whole_floats_as_integers(v: Any) -> Any:
    """`v` with every float of no fractional part (2.0) written as an integer (2)."""
    if isinstance(v, float) and v.is_integer() and abs(v) <= WHOLE_FLOAT_MAX:
        return int(v)
    if isinstance(v, list):
        return [_whole_floats_as_integers(item) for item in v]
    if isinstance(v, dict):
        return {k: _whole_floats_as_integers(item) for k, item in v.items()}
    return v


# --- the hook --------------------------------------------------------------------------------

# "METHOD /path", with any name for a path parameter (as schemathesis.toml matches them).
REPAIRS = [
    (re.compile(r"^(POST /v1/flows|PUT /v1/flows/\{[^/]+\})$"), repair_flow),
    (re.compile(r"^PUT /v1/settings/stripe$"), repair_stripe_settings),
]


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    body = case.body
    if not isinstance(body, (dict, list)) or "json" not in (case.media_type or ""):
        return case
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    repaired = _whole_floats_as_integers(body)
    label = case.operation.label
    repair = next((r for pattern, r in REPAIRS if pattern.match(label)), None)
    if repair is not None and isinstance(repaired, dict):
        repaired = repair(repaired)
    # Compared as JSON: in Python 1 == 1.0 == True.
    if _as_json(repaired) != _as_json(body):
        # Assigning (not mutating) marks the body for Schemathesis' revalidation.
        case.body = repaired
    return case


def _as_json(v: Any) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=True)
