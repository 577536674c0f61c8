#!/usr/bin/env python3
"""Card payments, customers and saved cards with Razorpay's official Python SDK against Kosh.

    python3 -m venv .build/sdk-venv && .build/sdk-venv/bin/pip install razorpay==2.0.1
    kosh serve                                             # in one terminal
    kosh merchant create --name "Acme Stores"              # prints key_id / key_secret
    KEY_ID=rzp_test_... KEY_SECRET=... .build/sdk-venv/bin/python examples/python_sdk_cards.py

Test mode: Razorpay's test cards, any OTP of 4-10 digits. The only Kosh-specific line is
`base_url=...`; every call is the stock SDK's.
"""

import os
import sys
import time

import razorpay


def card_payment(client, amount, extra):
    order = client.order.create({"amount": amount, "currency": "INR"})
    body = {"amount": amount, "currency": "INR", "order_id": order["id"], "method": "card",
            "email": "asha@example.com", "contact": "+919876543210"}
    body.update(extra)
    created = client.payment.createPaymentJson(body)
    return order, created


def main() -> int:
    key_id, key_secret = os.environ.get("KEY_ID"), os.environ.get("KEY_SECRET")
    if not key_id or not key_secret:
        print("Set KEY_ID and KEY_SECRET (from `kosh merchant create`).", file=sys.stderr)
        return 2
    client = razorpay.Client(auth=(key_id, key_secret), base_url=os.environ.get("KOSH_URL", "http://127.0.0.1:8080").rstrip("/"))

    customer = client.customer.create({"name": "Asha Rao", "email": f"asha.{int(time.time() * 1000)}@example.com",
                                       "contact": "+919876543210", "fail_existing": "0"})
    print(f"customer:         {customer['id']} {customer['name']}")
    customer = client.customer.edit(customer["id"], {"name": "Asha R."})
    print(f"customer edited:  {client.customer.fetch(customer['id'])['name']}")

    card = {"number": "4100280000001007", "expiry_month": "12", "expiry_year": "30", "cvv": "123", "name": "Asha Rao"}
    order, created = card_payment(client, 50000, {"card": card, "save": 1, "customer_id": customer["id"]})
    payment_id = created["razorpay_payment_id"]
    print(f"payment created:  {payment_id} next={[n['action'] for n in created['next']]}")
    otp = client.payment.otpGenerate(payment_id)
    print(f"otp generated:    card {otp['metadata']['network']} …{otp['metadata']['last4']}")
    try:
        client.payment.otpSubmit(payment_id, {"otp": "12"})
    except razorpay.errors.BadRequestError as error:
        print(f"wrong otp:        BadRequestError: {error}")
    resent = client.payment.otpResend(payment_id)
    print(f"otp resent:       next={resent['next']}")
    result = client.payment.otpSubmit(payment_id, {"otp": "1234"})
    client.utility.verify_payment_signature({"razorpay_order_id": order["id"], "razorpay_payment_id": payment_id,
                                             "razorpay_signature": result["razorpay_signature"]})
    print("otp submitted:    signature verified by utility.verify_payment_signature")
    details = client.payment.fetchCardDetails(payment_id)
    print(f"card details:     {details['id']} {details['network']} {details['type']} last4={details['last4']} issuer={details['issuer']}")
    print(f"card fetched:     {client.card.fetch(details['id'])['last4']}")
    iin = client.iin.fetch("652765")
    print(f"iin 652765:       {iin['network']} {iin['type']} {iin['issuer_name']}")

    tokens = client.token.all(customer["id"])
    token_id = tokens["items"][0]["id"]
    print(f"saved cards:      count={tokens['count']} {token_id} …{tokens['items'][0]['card']['last4']}")
    print(f"token fetched:    {client.token.fetch(customer['id'], token_id)['method']}")
    order, created = card_payment(client, 20000, {"customer_id": customer["id"], "token": token_id, "card": {"cvv": "123"}})
    client.payment.otpGenerate(created["razorpay_payment_id"])
    again = client.payment.otpSubmit(created["razorpay_payment_id"], {"otp": "4321"})
    client.utility.verify_payment_signature({"razorpay_order_id": order["id"], "razorpay_payment_id": again["razorpay_payment_id"],
                                             "razorpay_signature": again["razorpay_signature"]})
    print("paid with token:  signature verified")
    print(f"token deleted:    {client.token.delete(customer['id'], token_id)['deleted']}")
    print(f"customers:        count>={client.customer.all({'count': 100})['count']}")
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
