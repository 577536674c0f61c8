#!/bin/sh
# usage: pay.sh VPA AMOUNT  — creates an order and a UPI collect payment, prints the payment id.
# Uses $KEY (key_id:key_secret; else the contents of a file `key`) and $KOSH (the server's base
# URL, default http://127.0.0.1:8080).
set -e
K=${KEY:-$(cat key)}
KOSH=${KOSH:-http://127.0.0.1:8080}
ORDER=$(curl -s -u "$K" "$KOSH/v1/orders" -H 'Content-Type: application/json' -d "{\"amount\": $2, \"currency\": \"INR\"}" | python3 -c "import json,sys;print(json.load(sys.stdin)['id'])")
curl -s -u "$K" "$KOSH/v1/payments/create/upi" -H 'Content-Type: application/json' \
  -d "{\"order_id\":\"$ORDER\",\"amount\":$2,\"currency\":\"INR\",\"vpa\":\"$1\",\"email\":\"a@example.com\",\"contact\":\"9123456789\"}" | python3 -c "import json,sys;print(json.load(sys.stdin)['razorpay_payment_id'])"
