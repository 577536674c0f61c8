import Hummingbird
import KoshCore
import KoshFlows
import KoshJSON

/// `/v1/customers` and their saved cards, in Razorpay's shapes (issue 13).
struct CustomersAPI<Store: GatewayStore>: Sendable {
    let flows: PaymentFlows<Store>

    static var maximumNameLength: Int { 50 }
    static var maximumEmailLength: Int { 64 }
    static var maximumContactLength: Int { 15 }

    func register(_ v1: RouterGroup<MerchantContext>) {
        v1.post("customers") { request, context in try await self.create(request, context) }
        v1.get("customers") { request, context in
            jsonResponse(Render.collection(try await flows.customers(merchantID: context.merchant.id, page: try page(from: request)).map(Self.customer)))
        }
        v1.get("customers/:id") { _, context in
            jsonResponse(Self.customer(try await flows.customer(id: try MerchantAPI<Store>.id(context, .customer), merchantID: context.merchant.id)))
        }
        v1.put("customers/:id") { request, context in try await self.edit(request, context) }
        v1.get("customers/:id/tokens") { _, context in
            let tokens = try await flows.tokens(customerID: try MerchantAPI<Store>.id(context, .customer), merchantID: context.merchant.id)
            return jsonResponse(Render.collection(tokens.map(Self.token)))
        }
        v1.get("customers/:id/tokens/:token") { _, context in
            jsonResponse(Self.token(try await flows.token(id: try MerchantAPI<Store>.id(context, .token, parameter: "token"),
                                                          customerID: try MerchantAPI<Store>.id(context, .customer), merchantID: context.merchant.id)))
        }
        v1.delete("customers/:id/tokens/:token") { _, context in
            try await flows.deleteToken(id: try MerchantAPI<Store>.id(context, .token, parameter: "token"),
                                        customerID: try MerchantAPI<Store>.id(context, .customer), merchantID: context.merchant.id)
            return jsonResponse(.object([("deleted", .bool(true))]))
        }
    }

    /// The identity fields, checked as Razorpay checks them.
    static func identity(_ body: inout RequestBody) throws -> (name: String?, email: String?, contact: String?, gstin: String?) {
        let name = try body.string("name", maxLength: maximumNameLength)
        let email = try body.string("email", maxLength: maximumEmailLength)
        if let email, !email.unicodeScalars.contains("@") { throw KoshError.badRequest("The email must be a valid email address.", field: "email") }
        let contact = try body.string("contact", maxLength: maximumContactLength)
        if let contact {
            let digits = contact.utf8.filter { (48...57).contains($0) }.count
            guard digits >= 8, contact.utf8.allSatisfy({ (48...57).contains($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: " ") }) else {
                throw KoshError.badRequest("The contact number is invalid.", field: "contact", reason: "invalid_contact_number")
            }
        }
        let gstin = try body.string("gstin", maxLength: 15)
        if let gstin, gstin.utf8.count != 15 || !gstin.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) }) {
            throw KoshError.badRequest("The gstin must be 15 capital letters and digits.", field: "gstin")
        }
        return (name, email, contact, gstin)
    }

    func create(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let (raw, _) = try await RequestBody.parse(request, context: context)
        var body = raw
        let (name, email, contact, gstin) = try Self.identity(&body)
        let notes = try body.notes()
        var failExisting = true
        if let value = body["fail_existing"] {
            switch value {
            case .string("0"), .int(0), .bool(false): failExisting = false
            case .string("1"), .int(1), .bool(true): failExisting = true
            default: throw KoshError.badRequest("The fail_existing must be 0 or 1.", field: "fail_existing")
            }
        }
        try body.rejectUnknown(ignoring: ["fail_existing"])
        let customer = try await flows.createCustomer(merchant: context.merchant,
                                                      NewCustomer(name: name, email: email, contact: contact, gstin: gstin, notes: notes,
                                                                  failExisting: failExisting))
        return jsonResponse(Self.customer(customer))
    }

    func edit(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let id: ID<Customer> = try MerchantAPI<Store>.id(context, .customer)
        let (raw, _) = try await RequestBody.parse(request, context: context)
        var body = raw
        let (name, email, contact, gstin) = try Self.identity(&body)
        let notes = body["notes"] == nil ? nil : try body.notes()
        try body.rejectUnknown(ignoring: ["notes"])
        let customer = try await flows.editCustomer(id: id, merchantID: context.merchant.id, name: name, email: email, contact: contact,
                                                    gstin: gstin, notes: notes)
        return jsonResponse(Self.customer(customer))
    }

    static func customer(_ c: Customer) -> JSON {
        func text(_ value: String?) -> JSON { value.map(JSON.string) ?? .null }
        return .object([
            ("id", .string(c.id.rawValue)), ("entity", .string("customer")), ("name", text(c.name)), ("email", text(c.email)),
            ("contact", text(c.contact)), ("gstin", text(c.gstin)), ("notes", c.notes.json), ("created_at", .int(c.createdAt.value)),
        ])
    }

    /// Razorpay's token entity: the card without its number.
    static func token(_ t: CardToken) -> JSON {
        var card = Render.card(t.card)
        if case .object(var pairs) = card {
            pairs.removeAll { $0.0 == "id" || $0.0 == "token_iin" }
            pairs += [("expiry_month", .string(t.card.expiryMonth < 10 ? "0\(t.card.expiryMonth)" : "\(t.card.expiryMonth)")),
                      ("expiry_year", .string(String(t.card.expiryYear))),
                      ("flows", .object([("otp", .bool(true)), ("recurring", .bool(false))]))]
            card = .object(pairs)
        }
        return .object([
            ("id", .string(t.id.rawValue)), ("entity", .string("token")), ("token", .string(String(t.id.rawValue.dropFirst("token_".count)))),
            ("bank", .null), ("wallet", .null), ("method", .string("card")), ("card", card), ("recurring", .bool(false)),
            ("recurring_details", .object([("status", .string("not_applicable")), ("failure_reason", .null)])),
            ("auth_type", .null), ("mrn", .null), ("used_at", t.usedAt.map { .int($0.value) } ?? .null),
            ("created_at", .int(t.createdAt.value)), ("expired_at", .int(Self.expiresAt(t.card))), ("dcc_enabled", .bool(false)),
            ("billing_address", .null), ("compliant_with_tokenisation_guidelines", .bool(true)), ("status", .string("active")),
        ])
    }

    /// The end of the card's expiry month, unix seconds (UTC).
    static func expiresAt(_ card: Card) -> Int64 {
        var year = card.expiryYear, month = card.expiryMonth + 1
        if month == 13 { month = 1; year += 1 }
        // Days from 1970-01-01 to the first of (year, month), civil calendar.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int64(era * 146_097 + doe - 719_468) * 86_400 - 1
    }
}
