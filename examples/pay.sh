#!/bin/sh
# usage: pay.sh VPA AMOUNT  — creates an order and a UPI collect payment, prints the payment id
K=$(cat key)
ORDER=$(curl -s -u $K localhost:8080/v1/orders -H 'Content-Type: application/json' -d "{\"amount\": $2, \"currency\": \"INR\"}" | python3 -c "import json,sys;print(json.load(sys.stdin)['id'])")
curl -s -u $K localhost:8080/v1/payments/create/upi -H 'Content-Type: application/json' \
  -d "{\"order_id\":\"$ORDER\",\"amount\":$2,\"currency\":\"INR\",\"vpa\":\"$1\",\"email\":\"a@example.com\",\"contact\":\"9123456789\"}" | python3 -c "import json,sys;print(json.load(sys.stdin)['razorpay_payment_id'])"
