import Hummingbird
import KoshJSON

/// The card network's control routes under `/sandbox/v1/cards`, signed like the rest of
/// `/sandbox/v1` (docs/SANDBOX.md, "Cards"). Card numbers are answered masked.
struct CardControlAPI: Sendable {
    let runtime: SandboxRuntime

    /// At most this many of a card's transactions are listed, the newest.
    static let listedTransactions = 100

    func register(on router: Router<SandboxRequestContext>) {
        let api = router.group("sandbox/v1/cards")
        api.get { _, _ in
            let items = runtime.withWorld { world in TestCards.all.map { Self.view($0, world.cards.account($0)) } }
            return jsonResponse(.object([("count", .int(Int64(items.count))), ("items", .array(items))]))
        }
        api.get("config") { _, _ in jsonResponse(runtime.withWorld { $0.cards.timing }.json) }
        api.put("config") { request, context in
            var request = request
            let patch = try await request.decode(CardTimingPatch.self, context: context)
            let result = runtime.withWorld { world in
                Result { () throws(MalformedRequest) -> CardTiming in
                    world.cards.timing = try world.cards.timing.applying(patch)
                    return world.cards.timing
                }
            }
            return jsonResponse(try result.get().json)
        }
        api.get("transactions/:payment_id") { _, context in
            let paymentID = try context.parameters.require("payment_id")
            guard let record = runtime.withWorld({ $0.cards.books(paymentID) }) else {
                throw SandboxHTTPError.notFound("The acquirer has no transaction for \(paymentID)")
            }
            return jsonResponse(record.json)
        }
        // The cardholder's phone, for scripts and the load tool: the OTP the ACS last texted for a
        // payment's authentication (the same one `GET /sms/v1/messages` lists); for a payment at
        // alphapay, the authentication alphapay opened for it.
        api.get("otp/:payment_id") { _, context in
            let paymentID = try context.parameters.require("payment_id")
            let found = runtime.withWorld { world -> (String, String)? in
                guard let id = world.acs.byPayment[paymentID] ?? world.cards.alphapay.payments[paymentID]?.authenticationID,
                      let authentication = world.acs.authentications[id],
                      let otp = authentication.otp else { return nil }
                return (id, otp)
            }
            guard let (id, otp) = found else { throw SandboxHTTPError.notFound("No OTP has been sent for \(paymentID)") }
            return jsonResponse(.object([("payment_id", .string(paymentID)), ("authentication_id", .string(id)), ("otp", .string(otp))]))
        }
        api.get(":number") { _, context in
            let card = try Self.card(try context.parameters.require("number"))
            let json = runtime.withWorld { world -> JSON in
                let account = world.cards.account(card)
                let payments = (world.cards.paymentsByCard[card.number] ?? []).suffix(Self.listedTransactions)
                let transactions = payments.compactMap { world.cards.authorisation($0)?.json }
                let holds = account.holds.sorted { $0.key < $1.key }.map { JSON.object([("payment_id", .string($0.key)), ("amount", .int($0.value))]) }
                return Self.view(card, account).adding([("holds", .array(holds)), ("transactions", .array(transactions))])
            }
            return jsonResponse(json)
        }
        api.put(":number/account") { request, context in
            let card = try Self.card(try context.parameters.require("number"))
            var request = request
            let patch = try await request.decode(AccountPatch.self, context: context)
            let result = runtime.withWorld { world in
                Result { () throws(MalformedRequest) -> JSON in
                    var account = world.cards.account(card)
                    if let balance = patch.balance { account.balance = balance }
                    if let limit = patch.transactionLimit { account.transactionLimit = limit }
                    guard (0...Amounts.maximumAccepted).contains(account.balance), (0...Amounts.maximumAccepted).contains(account.transactionLimit)
                    else { throw MalformedRequest(message: "balance and transaction_limit must be 0…\(Amounts.maximumAccepted) paise") }
                    guard account.available >= 0 else {
                        throw MalformedRequest(message: "balance must cover the \(account.held) paise held by open authorisations")
                    }
                    world.cards.accounts[card.number] = account
                    return Self.view(card, account)
                }
            }
            return jsonResponse(try result.get())
        }
    }

    struct AccountPatch: Decodable {
        let balance: Int64?
        let transactionLimit: Int64?

        enum CodingKeys: String, CodingKey, CaseIterable { case balance, transactionLimit = "transaction_limit" }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: Set(CodingKeys.allCases.map(\.rawValue)))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            balance = try c.decodeIfPresent(Int64.self, forKey: .balance)
            transactionLimit = try c.decodeIfPresent(Int64.self, forKey: .transactionLimit)
        }
    }

    static func card(_ number: String) throws -> TestCard {
        guard let card = TestCards.card(number) else { throw SandboxHTTPError.notFound("No test card \(CardMask.mask(number))") }
        return card
    }

    static func view(_ card: TestCard, _ account: CardAccount) -> JSON {
        .object([
            ("number", .string(card.masked)),
            ("last4", .string(String(card.number.suffix(4)))),
            ("network", .string(card.network.rawValue)),
            ("issuer", .string(card.issuer)),
            ("type", .string(card.kind.rawValue)),
            ("domestic", .bool(card.domestic)),
            ("expiry", .string(card.expiry)),
            ("phone", .string(card.phone)),
            ("outcome", .string(TestCards.outcome(card))),
            ("balance", .int(account.balance)),
            ("held", .int(account.held)),
            ("available", .int(account.available)),
            ("transaction_limit", .int(account.transactionLimit)),
        ])
    }
}
