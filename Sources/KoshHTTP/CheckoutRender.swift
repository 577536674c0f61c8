import KoshCore
import KoshFlows
import KoshJSON

/// The checkout page's JSON: what it may offer for an order, and how a payment ended.
enum CheckoutRender {
    /// The banks the page shows as buttons before the searchable list (Razorpay's "popular banks").
    static let popularBanks = ["HDFC", "ICIC", "SBIN", "UTIB", "KKBK", "YESB"]

    /// UPI on the page: the QR code and intent need the live switch (test mode, like Razorpay's,
    /// knows collect only); collect where the merchant may still use it, and always in test mode,
    /// where it is the only UPI there is (success@razorpay, failure@razorpay).
    static func upiOptions(_ merchant: Merchant) -> (intent: Bool, collect: Bool) {
        (intent: merchant.mode == .live, collect: merchant.mode == .test || merchant.checkout.upiCollect)
    }

    static func preferences(_ p: CheckoutPreferences) -> JSON {
        let upi = upiOptions(p.merchant)
        let amount = p.order.amount
        return .object([
            ("merchant", .object([("name", .string(p.merchant.name))])),
            ("mode", .string(p.merchant.mode.rawValue)),
            ("order", .object([
                ("id", .string(p.order.id.rawValue)), ("amount", .int(amount)), ("currency", .string(p.order.currency.rawValue)),
                ("status", .string(p.order.machine.state.rawValue)),
            ])),
            ("methods", .object([
                ("upi", .object([("intent", .bool(upi.intent)), ("collect", .bool(upi.collect))])),
                ("card", .bool(true)),
                ("netbanking", .array(RedirectProviders.banks.filter { $0.maximumAmount >= amount }.map(provider))),
                ("popular_banks", .array(popularBanks.map(JSON.string))),
                ("wallet", .array(RedirectProviders.wallets.filter { $0.maximumAmount >= amount }.map(provider))),
            ])),
            ("saved_cards", .array(p.savedCards.map { token in
                .object([
                    ("token", .string(token.id.rawValue)), ("customer_id", .string(token.customerID.rawValue)),
                    ("network", .string(token.card.network.displayName)), ("last4", .string(token.card.last4)),
                    ("type", .string(token.card.type.rawValue)), ("issuer", token.card.issuer.map(JSON.string) ?? .null),
                ])
            })),
        ])
    }

    static func provider(_ p: RedirectProvider) -> JSON {
        .object([("code", .string(p.code)), ("name", .string(p.name))])
    }

    /// `{status}` while open; once over, the fields Razorpay's checkout hands the merchant:
    /// `razorpay_payment_id`, `razorpay_order_id`, `razorpay_signature`, or `error{…}` as
    /// `payment.failed` carries it.
    static func status(_ status: CheckoutPaymentStatus, paymentID: ID<Payment>) -> JSON {
        switch status {
        case .pending(let state):
            return .object([("razorpay_payment_id", .string(paymentID.rawValue)), ("status", .string(state.rawValue))])
        case .over(let result):
            if result.succeeded {
                return .object([("status", .string("paid"))] + result.fields.sorted { $0.key < $1.key }.map { ($0.key, JSON.string($0.value)) })
            }
            var error: [(String, JSON)] = []
            for key in ["code", "description", "source", "step", "reason"] {
                error.append((key, .string(result.fields["error[\(key)]"] ?? "")))
            }
            let metadata = result.fields["error[metadata]"].flatMap { try? JSON.parse(Array($0.utf8)) } ?? .object([])
            error.append(("metadata", metadata))
            return .object([("razorpay_payment_id", .string(paymentID.rawValue)), ("status", .string("failed")), ("error", .object(error))])
        }
    }
}
