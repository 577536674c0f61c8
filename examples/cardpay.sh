#!/bin/sh
# usage: cardpay.sh CARD_NUMBER AMOUNT — creates an order and a card payment (create/json, expiry
# 12/30, CVV 123), asks for the OTP, reads it from the sandbox (`kosh sandbox otp`) and submits
# it; prints the payment id. Uses $KEY (key_id:key_secret; else the contents of a file `key`)
# and $KOSH (the server's base URL, default http://127.0.0.1:8080); `kosh` must be on the PATH.
set -e
K=${KEY:-$(cat key)}
KOSH=${KOSH:-http://127.0.0.1:8080}
post() { curl -s -u "$K" "$KOSH$1" -H 'Content-Type: application/json' -d "$2"; }
field() { python3 -c "import json,sys;print(json.load(sys.stdin)['$1'])"; }
ORDER=$(post /v1/orders "{\"amount\": $2, \"currency\": \"INR\"}" | field id)
PAY=$(post /v1/payments/create/json "{\"amount\":$2,\"currency\":\"INR\",\"order_id\":\"$ORDER\",\"email\":\"asha@example.com\",\"contact\":\"+919876543210\",\"method\":\"card\",\"card\":{\"number\":\"$1\",\"expiry_month\":\"12\",\"expiry_year\":\"30\",\"cvv\":\"123\",\"name\":\"Asha Rao\"}}" | field razorpay_payment_id)
post "/v1/payments/$PAY/otp_generate" '{}' >/dev/null
post "/v1/payments/$PAY/otp/submit" "{\"otp\":\"$(kosh sandbox otp)\"}" >/dev/null
echo "$PAY"
