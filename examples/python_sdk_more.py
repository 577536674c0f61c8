#!/usr/bin/env python3
"""The rest of the Razorpay Python SDK's order, payment, refund and webhook calls against Kosh
(issue 14): an auto-captured order (`payment_capture: 1`), notes edited with `order.edit`,
`payment.edit` and `refund.edit`, `refund.create` with a `payment_id`, the list calls, the
downtimes, `fetchPaymentMethods` (which calls `/methods`, without `/v1`), and `webhook.create`,
`fetch`, `edit`, `all`. Everything is the stock SDK (razorpay==2.0.1) but `base_url`.

    KEY_ID=rzp_test_... KEY_SECRET=... KOSH_URL=http://127.0.0.1:8080 python examples/python_sdk_more.py
"""

import os
import sys
import time

import razorpay


def main() -> int:
    key_id, key_secret = os.environ.get("KEY_ID"), os.environ.get("KEY_SECRET")
    if not key_id or not key_secret:
        print("Set KEY_ID and KEY_SECRET (from `kosh merchant create`).", file=sys.stderr)
        return 2
    base_url = os.environ.get("KOSH_URL", "http://127.0.0.1:8080").rstrip("/")
    client = razorpay.Client(auth=(key_id, key_secret), base_url=base_url)

    # An order captured as soon as it is authorised: no capture call.
    order = client.order.create({"amount": 30000, "currency": "INR", "receipt": "sdk-more-1", "payment_capture": 1})
    order = client.order.edit(order["id"], {"notes": {"shipping": "express"}})
    print(f"order edited:     {order['id']} notes={order['notes']}")
    payment = client.payment.createUpi({
        "order_id": order["id"], "amount": 30000, "currency": "INR", "method": "upi", "vpa": "success@razorpay",
        "email": "asha@example.com", "contact": "+919876543210",
    })
    payment_id = payment["razorpay_payment_id"]
    deadline = time.time() + 20
    while client.payment.fetch(payment_id)["status"] != "captured":
        if time.time() > deadline:
            print("the payment was not captured in 20 s", file=sys.stderr)
            return 1
        time.sleep(0.2)
    payment = client.payment.edit(payment_id, {"notes": {"gift": "yes"}})
    print(f"auto-captured:    {payment['id']} status={payment['status']} notes={payment['notes']}")
    print(f"order paid:       {client.order.fetch(order['id'])['status']}")

    refund = client.refund.create({"payment_id": payment_id, "amount": 10000, "notes": {"why": "size"}})
    refund = client.refund.edit(refund["id"], {"notes": {"why": "wrong size"}})
    print(f"refund created:   {refund['id']} amount={refund['amount']} notes={refund['notes']}")
    print(f"refunds listed:   {client.refund.all({'count': 1})['count']}")
    print(f"payments listed:  {client.payment.all({'count': 2})['count']}")
    print(f"orders listed:    {client.order.all({'count': 2})['count']}")
    print(f"downtimes:        {client.payment.fetchDownTime()['entity']}")
    methods = client.payment.fetchPaymentMethods()
    print(f"methods:          upi={methods['upi']} banks={len(methods['netbanking'])} wallets={sorted(methods['wallet'])[:3]}")

    # A loopback URL needs KOSH_WEBHOOK_ALLOW_PRIVATE=1 on the server, as in README's walkthrough;
    # nothing is delivered to it: the endpoint is deleted before any event.
    url = os.environ.get("WEBHOOK_URL", "http://127.0.0.1:9/sdk-more")
    hook = client.webhook.create({"url": url, "events": ["payment.captured"], "secret": "sdk-more-secret"})
    hook = client.webhook.edit(hook["id"], None, {"url": url, "events": ["payment.captured", "refund.processed"]})
    fetched = client.webhook.fetch(hook["id"], None)
    print(f"webhook edited:   {fetched['id']} events={fetched['events']}")
    # No SDK call deletes a v1 webhook; the client's own request does (DELETE /v1/webhooks/:id).
    client.delete(f"/v1/webhooks/{hook['id']}", {})
    left = [h["id"] for h in client.webhook.all()["items"]]
    print(f"webhook deleted:  {hook['id'] not in left}")

    try:
        client.order.edit(order["id"], {"amount": 1})
    except razorpay.errors.BadRequestError as error:
        print(f"edit refused:     {error}")
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
