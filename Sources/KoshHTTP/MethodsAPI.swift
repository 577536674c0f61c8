import Hummingbird
import KoshCore
import KoshJSON

/// `GET /v1/methods` (and `/methods`, the path the Python SDK's `fetchPaymentMethods` calls):
/// the methods a merchant's customers may pay with, in Razorpay's shape — cards and their
/// networks, the netbanking banks by code and name, the wallets, UPI. Every merchant has them
/// all; EMI, cardless EMI and pay-later are not offered.
enum MethodsAPI {
    static func register(on router: Router<KoshRequestContext>, authenticator: any MerchantAuthenticator) {
        for path in ["v1/methods", "methods"] {
            router.group(RouterPath(path)).add(middleware: BasicAuthMiddleware(authenticator: authenticator))
                .get { _, _ in jsonResponse(Self.methods) }
        }
    }

    static let methods: JSON = {
        let networks = CardNetwork.allCases.filter { $0 != .unknown }
        var cardNetworks: [(String, JSON)] = networks.map { ($0.methodCode, .int(1)) }
        cardNetworks.append(("BAJAJ", .int(0)))
        return .object([
            ("entity", .string("methods")),
            ("card", .bool(true)), ("debit_card", .bool(true)), ("credit_card", .bool(true)), ("prepaid_card", .bool(true)),
            ("card_networks", .object(cardNetworks)),
            ("card_subtype", .object([("consumer", .int(1)), ("business", .int(1)), ("premium", .int(0))])),
            ("amex", .bool(true)),
            ("netbanking", .object(RedirectProviders.banks.map { ($0.code, .string($0.name)) })),
            ("wallet", .object(RedirectProviders.wallets.map { ($0.code, .bool(true)) })),
            ("emi", .bool(false)), ("upi", .bool(true)), ("cardless_emi", .array([])), ("paylater", .array([])),
            ("upi_intent", .bool(true)), ("recurring", .object([("card", .bool(false)), ("upi", .bool(false))])),
        ])
    }()
}
