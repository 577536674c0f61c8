"""Schemathesis hooks for scripts/fuzz-api.sh (loaded through SCHEMATHESIS_HOOKS).

1. `x-propertyNames`. OpenAPI 3.0 cannot constrain the names of an object's members;
   openapi.json states the notes key rule (1–256 characters, no control characters) as
   `x-propertyNames`. The generator does not honour `propertyNames` inside `notes`' oneOf, so
   `map_case` applies the rule to the keys of positive (schema-valid) cases.

2. `schema_valid_request_refused_for_shape`. A schema-valid request to Kosh can still be
   refused with 400 for reasons no schema can know: the id does not exist (Razorpay answers
   400, not 404), the payment is in the wrong state, the amount differs from the order's, a
   test-mode VPA is not one the test rail knows. fuzz-api.toml therefore lets the built-in
   positive_data_acceptance accept 400, and this check fails a schema-valid request that was
   refused with any *other* 400: a refusal of its shape, which means openapi.json and the
   server's validation disagree.
"""
import json
import os
import re

import schemathesis

# Refusals that depend on stored state or the mode, never on the request's shape.
STATE_REASONS = {
    "resource_not_found", "order_already_paid", "payment_in_progress", "payment_already_captured",
    "payment_not_authorized", "payment_not_captured", "payment_fully_refunded", "refund_amount_exceeded",
    "invalid_state", "idempotency_key_reused",
    # Cards and customers: uniqueness, saved tokens, the OTP's state, and the card rules no schema
    # can state (the Luhn check, an expiry month in the past).
    "customer_already_exists", "token_not_found", "otp_not_generated", "otp_resend_limit_reached", "incorrect_otp",
    "payment_method_not_card", "card_number_invalid", "card_expired", "authentication_failed",
    # Netbanking: each bank's own cap on a payment (the schema states only the widest).
    "amount_exceeds_maximum_amount_allowed",
}
STATE_MESSAGES = (
    "The id provided does not exist",                      # create/upi: order_id unknown
    "The currency should be the same as",                  # the order's / payment's currency
    "The amount must be equal to the order amount due",
    "does not match the payment amount",
    "Capture amount must be equal to the amount authorized",
    "Test mode supports the collect flow only",            # intent needs live keys
    "one of the merchant's checkout origins",              # the hosted page: origins the merchant set
    "The vpa field is required",                           # checkout UPI without vpa: QR needs live keys
)


def _copy_property_names(node):
    if isinstance(node, dict):
        if "x-propertyNames" in node and "propertyNames" not in node:
            node["propertyNames"] = node["x-propertyNames"]
        for value in node.values():
            _copy_property_names(value)
    elif isinstance(node, list):
        for value in node:
            _copy_property_names(value)


@schemathesis.hook
def before_load_schema(context, raw_schema):
    _copy_property_names(raw_schema)


CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")


def _valid_notes_key(key, index):
    key = CONTROL.sub("", key)[:256]
    return key or f"k{index}"


# Webhook URLs the fuzzer makes up (public names and addresses among them) are never used: a
# webhook that is created would be delivered to. Every well-formed one is replaced by a closed
# loopback port (fuzz-api.sh picks it and starts kosh with KOSH_WEBHOOK_ALLOW_PRIVATE=1), so no
# request of the run leaves this machine. Malformed ones stay, for the server to refuse.
WEBHOOK_SINK = os.environ.get("FUZZ_WEBHOOK_SINK", "http://127.0.0.1:9/fuzz-hook")
WELL_FORMED_URL = re.compile(r"^[Hh][Tt][Tt][Pp][Ss]?://[\x21\x22\x24-\x2e\x30-\x39\x3b-\x3e\x40-\x7e][\x21-\x7e]*$")


def _pin_webhook_url(case):
    if not case.operation.path.startswith("/v1/webhooks") or not isinstance(case.body, dict):
        return
    url = case.body.get("url")
    if isinstance(url, str) and 8 <= len(url) <= 2048 and WELL_FORMED_URL.match(url):
        case.body["url"] = WEBHOOK_SINK


# The checkout's calls carry the merchant's public key id instead of Basic auth
# (fuzz-api.sh exports the fuzz merchant's as FUZZ_KEY_ID): a made-up one only ever meets the
# 401, so valid cases get the real one and reach the checks behind it.
FUZZ_KEY_ID = os.environ.get("FUZZ_KEY_ID", "")


def _pin_key_id(case):
    if not FUZZ_KEY_ID or not case.operation.path.startswith("/v1/checkout"):
        return
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if isinstance(case.query, dict) and "key_id" in case.query:
        case.query["key_id"] = FUZZ_KEY_ID
    if isinstance(case.body, dict) and "key_id" in case.body:
        case.body["key_id"] = FUZZ_KEY_ID


@schemathesis.hook
def map_case(context, case):
    _pin_webhook_url(case)
    _pin_key_id(case)
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    notes = case.body.get("notes")
    if isinstance(notes, dict):
        fixed = {}
        for index, (key, value) in enumerate(notes.items()):
            name = _valid_notes_key(key, index)
            while name in fixed:
                name = f"{name[:250]}_{index}"
            fixed[name] = value
        case.body["notes"] = fixed
    return case


@schemathesis.check
def schema_valid_request_refused_for_shape(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    # Only cases whose every part was generated as valid.
    if any(component.mode.is_negative for component in meta.components.values()):
        return None
    try:
        error = json.loads(response.text)["error"]
    except Exception:
        raise AssertionError(f"400 without Razorpay's error body: {response.text[:200]!r}")
    reason = error.get("reason") or ""
    description = error.get("description") or ""
    if reason in STATE_REASONS or any(m in description for m in STATE_MESSAGES):
        return None
    if reason == "invalid_vpa" and (case.operation.path == "/v1/payments/validate/vpa" or "In test mode" in description):
        return None  # a well-formed VPA the UPI switch (or the test rail) does not know
    raise AssertionError(
        f"Schema-valid request refused for its shape: {error.get('field')}: {description} (reason {reason})")
