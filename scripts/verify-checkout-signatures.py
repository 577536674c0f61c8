#!/usr/bin/env python3
"""Checks every signed checkout result the browser tests wrote with the official Razorpay
Python SDK's utility.verify_payment_signature (issue 14: "each ends with the signature
verified by the official Python SDK").

Usage: verify-checkout-signatures.py FILE
FILE holds one JSON object per line: razorpay_order_id, razorpay_payment_id,
razorpay_signature, key_id, key_secret (CheckoutBrowserTests writes it when
KOSH_CHECKOUT_SIGNATURES names it). Fails when the file is empty or any signature is refused.
"""
import json
import sys

import razorpay

path = sys.argv[1]
with open(path) as f:
    lines = [json.loads(line) for line in f if line.strip()]
if not lines:
    sys.exit(f"{path}: no checkout results to verify (did CheckoutBrowserTests run?)")
for entry in lines:
    client = razorpay.Client(auth=(entry["key_id"], entry["key_secret"]))
    fields = {k: entry[k] for k in ("razorpay_order_id", "razorpay_payment_id", "razorpay_signature")}
    # Raises razorpay.errors.SignatureVerificationError when the signature is wrong.
    client.utility.verify_payment_signature(fields)
    # And a tampered one must be refused.
    last = fields["razorpay_payment_id"][-1]
    tampered = dict(fields, razorpay_payment_id=fields["razorpay_payment_id"][:-1] + ("y" if last == "x" else "x"))
    try:
        client.utility.verify_payment_signature(tampered)
    except razorpay.errors.SignatureVerificationError:
        pass
    else:
        sys.exit(f"the SDK accepted a tampered signature: {tampered}")
print(f"{len(lines)} checkout signatures verified by the razorpay SDK's utility.verify_payment_signature (and a tampered one refused each time)")
