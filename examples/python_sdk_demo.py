#!/usr/bin/env python3
"""Drive a local Kosh server with Razorpay's official Python SDK.

    python3 -m venv .build/sdk-venv && .build/sdk-venv/bin/pip install razorpay==2.0.1
    kosh serve                                             # in one terminal
    kosh merchant create --name "Acme Stores"              # prints key_id / key_secret
    KEY_ID=rzp_test_... KEY_SECRET=... .build/sdk-venv/bin/python examples/python_sdk_demo.py

Environment:
    KEY_ID, KEY_SECRET   the merchant's test-mode API key (required)
    KOSH_URL             where Kosh listens (default http://127.0.0.1:8080)

The only Kosh-specific line is `base_url=...`; everything else is the stock SDK.
"""

import os
import sys
import time

import razorpay


def main() -> int:
    key_id = os.environ.get("KEY_ID")
    key_secret = os.environ.get("KEY_SECRET")
    if not key_id or not key_secret:
        print("Set KEY_ID and KEY_SECRET (from `kosh merchant create`).", file=sys.stderr)
        return 2
    base_url = os.environ.get("KOSH_URL", "http://127.0.0.1:8080").rstrip("/")

    client = razorpay.Client(auth=(key_id, key_secret), base_url=base_url)

    # 1. An order for ₹500.00 (amounts are in paise).
    order = client.order.create({
        "amount": 50000,
        "currency": "INR",
        "receipt": "sdk-demo-1",
        "notes": {"source": "python_sdk_demo"},
    })
    print(f"order created:    {order['id']} status={order['status']} amount_due={order['amount_due']}")
    order = client.order.fetch(order["id"])
    print(f"order fetched:    {order['id']} status={order['status']}")

    # 2. A UPI collect payment, server to server (POST /v1/payments/create/upi).
    #    In test mode, success@razorpay approves after ~1.5 s; failure@razorpay declines.
    created = client.payment.createUpi({
        "order_id": order["id"],
        "amount": 50000,
        "currency": "INR",
        "method": "upi",
        "vpa": "success@razorpay",
        "email": "asha@example.com",
        "contact": "+919876543210",
    })
    payment_id = created["razorpay_payment_id"]
    print(f"payment created:  {payment_id}")

    # 3. Poll until the payer "approves" the collect request.
    deadline = time.monotonic() + 30
    while True:
        payment = client.payment.fetch(payment_id)
        if payment["status"] != "created":
            break
        if time.monotonic() > deadline:
            print("payment was not authorized within 30 s", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"payment fetched:  {payment_id} status={payment['status']}")
    if payment["status"] != "authorized":
        print(f"unexpected status {payment['status']}: {payment.get('error_description')}", file=sys.stderr)
        return 1

    # 4. Capture the full amount.
    payment = client.payment.capture(payment_id, 50000, {"currency": "INR"})
    print(f"payment captured: {payment_id} status={payment['status']} fee={payment['fee']} tax={payment['tax']}")

    # 5. A partial refund, then fetch it back.
    refund = client.payment.refund(payment_id, {"amount": 20000, "notes": {"reason": "one item returned"}})
    print(f"refund created:   {refund['id']} amount={refund['amount']} status={refund['status']}")
    refund = client.refund.fetch(refund["id"])
    print(f"refund fetched:   {refund['id']} payment_id={refund['payment_id']} status={refund['status']}")

    # 6. The order's payments; the order itself is now paid.
    payments = client.order.payments(order["id"])
    print(f"order payments:   count={payments['count']} "
          + ", ".join(f"{p['id']} {p['status']} refunded={p['amount_refunded']} ({p['refund_status']})"
                      for p in payments["items"]))
    print(f"order now:        status={client.order.fetch(order['id'])['status']}")

    # 7. Refunding more than is left is refused with a BAD_REQUEST_ERROR.
    try:
        client.payment.refund(payment_id, {"amount": 40000})
    except razorpay.errors.BadRequestError as error:
        print(f"over-refund refused (BadRequestError): {error}")
    else:
        print("over-refund was accepted; expected a BadRequestError", file=sys.stderr)
        return 1

    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
