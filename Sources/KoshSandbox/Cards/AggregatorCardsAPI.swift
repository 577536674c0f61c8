import Hummingbird
import KoshJSON
import NIOCore

/// alphapay's card API under `/alphapay/v1/card_payments` (docs/CARDS.md §4): signed, under the
/// `alphapay` faults, errors in alphapay's dialect (`{"error": {"code", "description"}}`, plus
/// `field` for a bad field). The decisions are made on the world (`AggregatorCards.swift`); this
/// type reads bodies, texts OTPs and waits for slow issuers on real time.
struct AlphapayCardAPI: Sendable {
    let runtime: SandboxRuntime
    let notifications: NotificationProviders
    /// Slow issuers answer on real time (they hold up an HTTP answer, as on the acquirer's wire).
    private let started = ContinuousClock.now

    init(runtime: SandboxRuntime, notifications: NotificationProviders) {
        self.runtime = runtime
        self.notifications = notifications
    }

    func register(on router: Router<SandboxRequestContext>) {
        let api = router.group("alphapay/v1/card_payments").add(middleware: FaultMiddleware(rail: .alphapay, runtime: runtime))
        api.post { request, context in try await Self.answering { try await create(request, context) } }
        api.get(":reference") { request, context in
            try await Self.answering {
                let reference = try Self.reference(context)
                let uptime = uptimeMilliseconds()
                guard let snapshot = runtime.withWorld({ $0.cardPayment(reference, uptime: uptime) }) else { throw Self.notFound(reference) }
                return view(snapshot, request)
            }
        }
        api.post(":reference/otp") { request, context in try await Self.answering { try await sendOTP(request, context) } }
        api.post(":reference/otp/verify") { request, context in try await Self.answering { try await verify(request, context) } }
        api.post(":reference/authorize") { request, context in try await Self.answering { try await authorize(request, context) } }
        api.post(":reference/capture") { request, context in try await Self.answering { try await capture(request, context) } }
        api.post(":reference/void") { request, context in try await Self.answering { try await void(request, context) } }
        api.post(":reference/refunds") { request, context in try await Self.answering { try await refund(request, context) } }
    }

    // MARK: Calls

    private func create(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        let body = try await Self.body(request, context, allowed: ["reference", "amount", "currency", "card", "merchant_name", "return_url"])
        let reference = try body.identifier("reference")
        let amount = try body.amount("amount")
        let uptime = uptimeMilliseconds()
        // A repeat answers the payment as it is now; the card is not checked again.
        if let replay = try Self.existing(runtime.withWorld({ $0.repeatedCardPayment(reference, amount: amount, uptime: uptime) }), reference) {
            return view(replay, request)
        }
        let new = try Self.validate(body, reference: reference, amount: amount)
        let now = runtime.now()
        let outcome = runtime.withWorld { $0.createCardPayment(new, now: now, uptime: uptime) }
        switch outcome {
        case .created(let snapshot): return view(snapshot, request, status: .created)
        case .existing, .conflict, .full:
            // Another create of the same reference got there first (or the books are full).
            guard let replay = try Self.existing(outcome, reference) else { preconditionFailure("Invalid state: a create neither made nor found") }
            return view(replay, request)
        }
    }

    private func sendOTP(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        let reference = try Self.reference(context)
        _ = try await Self.body(request, context, allowed: [], emptyAllowed: true)
        let now = runtime.now()
        let uptime = uptimeMilliseconds()
        switch runtime.withWorld({ $0.sendCardPaymentOTP(reference, now: now, uptime: uptime) }) {
        case .sent(let snapshot, let message):
            guard ACSAPI.text(message, notifications) else {
                throw APError(.serviceUnavailable, "OTP_DELIVERY_FAILED", "The OTP could not be texted to the cardholder; send it again")
            }
            return view(snapshot, request)
        case .resendLimit:
            throw APError(.tooManyRequests, "RESEND_LIMIT", "No more OTPs can be sent for this payment")
        case .notChallenging:
            throw APError(.conflict, "NOT_CHALLENGING", "The payment is not waiting for an OTP")
        case .notFound:
            throw Self.notFound(reference)
        }
    }

    private func verify(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        let reference = try Self.reference(context)
        let body = try await Self.body(request, context, allowed: ["otp"])
        let otp = try body.string("otp", maximumBytes: 32)
        let now = runtime.now()
        let uptime = uptimeMilliseconds()
        switch runtime.withWorld({ $0.verifyCardPaymentOTP(reference, otp: otp, now: now, uptime: uptime) }) {
        case .answered(let snapshot): return view(snapshot, request)
        case .otpNotSent: throw APError(.conflict, "OTP_NOT_SENT", "Send the OTP first: POST …/otp")
        case .notFound: throw Self.notFound(reference)
        }
    }

    private func authorize(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        let reference = try Self.reference(context)
        _ = try await Self.body(request, context, allowed: [], emptyAllowed: true)
        let now = runtime.now()
        let asked = uptimeMilliseconds()
        switch runtime.withWorld({ $0.authorizeCardPayment(reference, now: now, uptime: asked) }) {
        case .answer(let snapshot):
            return view(snapshot, request)
        case .notAuthenticated(let snapshot):
            throw APError(.conflict, "NOT_AUTHENTICATED",
                          "The payment is \(snapshot.payment.status.rawValue): it can be authorised only once authenticated")
        case .notFound:
            throw Self.notFound(reference)
        case .awaitIssuer(let epoch, let milliseconds):
            // The issuer decides on real time; a repeat meanwhile waits here for the same answer.
            await runtime.pause(milliseconds: milliseconds)
            let uptime = uptimeMilliseconds()
            guard !Task.isCancelled,
                  let snapshot = runtime.withWorld({ $0.cardPaymentIssuerAnswered(reference, epoch: epoch, uptime: uptime) }) else {
                throw Self.notFound(reference)
            }
            return view(snapshot, request)
        }
    }

    private func capture(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        let reference = try Self.reference(context)
        let body = try await Self.body(request, context, allowed: ["amount"])
        let amount = try body.amount("amount")
        let uptime = uptimeMilliseconds()
        switch runtime.withWorld({ $0.captureCardPayment(reference, amount: amount, uptime: uptime) }) {
        case .captured(let snapshot): return view(snapshot, request)
        case .exceeds: throw APError(.badRequest, "AMOUNT_EXCEEDS", "The capture is more than the authorised amount", field: "amount")
        case .notAuthorized(let status): throw APError(.conflict, "NOT_AUTHORIZED", "The payment is \(status.rawValue), not authorized")
        case .notFound: throw Self.notFound(reference)
        }
    }

    private func void(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        let reference = try Self.reference(context)
        _ = try await Self.body(request, context, allowed: [], emptyAllowed: true)
        let uptime = uptimeMilliseconds()
        switch runtime.withWorld({ $0.voidCardPayment(reference, uptime: uptime) }) {
        case .answer(let snapshot): return view(snapshot, request)
        case .alreadyCaptured: throw APError(.conflict, "ALREADY_CAPTURED", "The payment is captured: refund it instead")
        case .notFound: throw Self.notFound(reference)
        }
    }

    private func refund(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        let reference = try Self.reference(context)
        let body = try await Self.body(request, context, allowed: ["refund_reference", "amount"])
        let refundReference = try body.identifier("refund_reference")
        let amount = try body.amount("amount")
        let uptime = uptimeMilliseconds()
        switch runtime.withWorld({ $0.refundCardPayment(reference, refundReference: refundReference, amount: amount, uptime: uptime) }) {
        case .refunded(let refund), .replayed(let refund):
            return jsonResponse(.object([("id", .string(refund.id)), ("refund_reference", .string(refund.refundReference)),
                                         ("payment_reference", .string(refund.paymentReference)), ("amount", .int(refund.amount)),
                                         ("status", .string("processed"))]))
        case .conflict:
            throw APError(.conflict, "DUPLICATE_REFERENCE", "refund_reference \(refundReference) was used for a different refund",
                          field: "refund_reference")
        case .notFound:
            throw Self.notFound(reference)
        case .notCaptured(let status):
            throw APError(.conflict, "NOT_CAPTURED", "The payment is \(status.rawValue), not captured")
        case .exceeds:
            throw APError(.badRequest, "REFUND_EXCEEDS", "The refund is more than the amount captured and not yet refunded", field: "amount")
        case .full:
            throw APError(.serviceUnavailable, "SANDBOX_FULL", "The sandbox holds too many refunds; reset it")
        }
    }

    // MARK: The answer

    /// The payment object of docs/CARDS.md §4; `challenge_url` (the ACS's page, on the host the
    /// call came to) while a challenge is open, else null.
    func view(_ snapshot: AggregatorCardSnapshot, _ request: Request, status: HTTPResponse.Status = .ok) -> Response {
        let payment = snapshot.payment
        let record = payment.authorisation
        let wasAuthorised = record.map { $0.status == .approved || $0.status == .reversed } ?? false
        var authentication: [(String, JSON)] = []
        if let acs = snapshot.authentication {
            let challenging = acs.status == .challengeRequired
            authentication = [
                ("status", .string(acs.status.rawValue)),
                ("challenge_url", challenging ? .string(ACSAPI.challengeURL(acs.id, request)) : .null),
                ("attempts_left", .int(Int64(acs.attemptsLeft))),
                ("resends_left", .int(Int64(acs.resendsLeft))),
                ("otp_sent", .bool(acs.otp != nil)),
                ("reason", .optional(acs.reason)),
            ]
        }
        let json = JSON.object([
            ("id", .string(payment.id)),
            ("reference", .string(payment.reference)),
            ("amount", .int(payment.amount)),
            ("currency", .string("INR")),
            ("status", .string(payment.status.rawValue)),
            ("card", .object([("last4", .string(payment.last4)), ("network", .string(payment.network.rawValue))])),
            ("authentication", .object(authentication)),
            ("auth_code", wasAuthorised ? .optional(record?.authCode) : .null),
            ("rrn", wasAuthorised ? .optional(record?.rrn) : .null),
            ("error_code", .optional(payment.errorCode)),
            ("error_description", .optional(payment.errorDescription)),
            ("captured_amount", .int(record?.captured ?? 0)),
            ("refunded_amount", .int(record?.refunded ?? 0)),
            ("fee", .int(payment.fee)),
            ("created_at", .int(payment.createdAt / 1_000)),
        ])
        return jsonResponse(json, status: status)
    }

    // MARK: Reading requests

    /// An error answered in alphapay's dialect, naming the field when one is at fault.
    struct APError: Error {
        let status: HTTPResponse.Status
        let code: String
        let description: String
        let field: String?

        init(_ status: HTTPResponse.Status, _ code: String, _ description: String, field: String? = nil) {
            self.status = status
            self.code = code
            self.description = description
            self.field = field
        }

        static func badField(_ field: String, _ description: String) -> APError { APError(.badRequest, "BAD_REQUEST", description, field: field) }

        var response: Response {
            var error: [(String, JSON)] = [("code", .string(code)), ("description", .string(description))]
            if let field { error.append(("field", .string(field))) }
            return jsonResponse(.object([("error", .object(error))]), status: status)
        }
    }

    static func answering(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let error as APError {
            return error.response
        }
    }

    static func notFound(_ reference: String) -> APError { APError(.notFound, "NOT_FOUND", "No card payment \(reference)") }

    /// The path's reference; one that could never have been created is simply not found.
    static func reference(_ context: SandboxRequestContext) throws -> String {
        let reference = try context.parameters.require("reference")
        guard (try? Validate.identifier(reference, field: "reference")) != nil else {
            throw APError(.notFound, "NOT_FOUND", "No such card payment")
        }
        return reference
    }

    /// The JSON object body with only `allowed` members (an empty body too, when `emptyAllowed`).
    static func body(_ request: Request, _ context: SandboxRequestContext, allowed: Set<String>,
                     emptyAllowed: Bool = false) async throws -> Fields {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        if buffer.readableBytes == 0 && emptyAllowed { return Fields(members: [], prefix: "") }
        guard let json = try? JSON.parse(buffer.readableBytesView), case .object(let members) = json else {
            throw APError.badField("body", "The request body must be a JSON object")
        }
        let fields = Fields(members: members, prefix: "")
        try fields.onlyKnown(allowed)
        return fields
    }

    /// Members of a JSON object read with their field names (`card.number`) in errors.
    struct Fields {
        let members: [(String, JSON)]
        let prefix: String

        func name(_ key: String) -> String { prefix + key }

        /// Null counts as absent.
        func value(_ key: String) -> JSON? {
            guard let value = members.first(where: { $0.0 == key })?.1, value != .null else { return nil }
            return value
        }

        func onlyKnown(_ allowed: Set<String>) throws(APError) {
            if let unknown = members.map(\.0).first(where: { !allowed.contains($0) }) {
                throw APError.badField(name(unknown), "Unknown field \(name(unknown))")
            }
        }

        func required(_ key: String) throws(APError) -> JSON {
            guard let value = value(key) else { throw APError.badField(name(key), "\(name(key)) is required") }
            return value
        }

        func string(_ key: String, maximumBytes: Int) throws(APError) -> String {
            guard case .string(let text) = try required(key), text.utf8.count <= maximumBytes else {
                throw APError.badField(name(key), "\(name(key)) must be a string of at most \(maximumBytes) bytes")
            }
            return text
        }

        func optionalString(_ key: String, maximumBytes: Int) throws(APError) -> String? {
            guard value(key) != nil else { return nil }
            return try string(key, maximumBytes: maximumBytes)
        }

        func identifier(_ key: String) throws(APError) -> String {
            let text = try string(key, maximumBytes: SandboxLimits.maximumIdentifierLength)
            guard (try? Validate.identifier(text, field: key)) != nil else {
                throw APError.badField(name(key), "\(name(key)) must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'")
            }
            return text
        }

        func amount(_ key: String) throws(APError) -> Int64 {
            guard case .int(let amount) = try required(key), Amounts.isAcceptable(amount) else {
                throw APError.badField(name(key), "\(name(key)) must be an integer number of paise, 1…\(Amounts.maximumAccepted)")
            }
            return amount
        }

        /// An integer, or a string of digits, in `range`.
        func integer(_ key: String, in range: ClosedRange<Int64>, maximumDigits: Int) throws(APError) -> Int64 {
            let raw = try required(key)
            let value: Int64? = switch raw {
            case .int(let number): number
            case .string(let text) where (1...maximumDigits).contains(text.utf8.count) && text.utf8.allSatisfy(Self.isDigit): Int64(text)
            default: nil
            }
            guard let value, range.contains(value) else {
                throw APError.badField(name(key), "\(name(key)) must be a number in \(range.lowerBound)…\(range.upperBound)")
            }
            return value
        }

        func object(_ key: String) throws(APError) -> Fields {
            guard case .object(let members) = try required(key) else { throw APError.badField(name(key), "\(name(key)) must be an object") }
            return Fields(members: members, prefix: name(key) + ".")
        }

        static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    }

    /// Checks a new payment's fields: the card (Luhn, then the network from the BIN: alphapay
    /// takes Visa, MasterCard and American Express), the expiry's form (not whether it has
    /// passed: that is the issuer's answer), the CVV's form, the merchant and the return URL.
    static func validate(_ body: Fields, reference: String, amount: Int64) throws(APError) -> NewAggregatorCardPayment {
        guard case .string("INR") = try body.required("currency") else { throw APError.badField("currency", "currency must be INR") }
        let card = try body.object("card")
        try card.onlyKnown(["number", "expiry_month", "expiry_year", "cvv", "name"])
        let number = try card.string("number", maximumBytes: 19)
        guard (12...19).contains(number.utf8.count), number.utf8.allSatisfy(Fields.isDigit) else {
            throw APError.badField("card.number", "card.number must be 12 to 19 digits")
        }
        guard CardMask.isLuhnValid(number) else { throw APError(.badRequest, "INVALID_CARD", "The card number is not valid", field: "card.number") }
        guard let network = CardNetworks.network(of: number), [.visa, .mastercard, .amex].contains(network) else {
            let name = CardNetworks.network(of: number)?.rawValue ?? "This card's network"
            throw APError(.badRequest, "CARD_NOT_SUPPORTED", "\(name) cards are not supported: Visa, MasterCard and American Express only",
                          field: "card.number")
        }
        let month = try card.integer("expiry_month", in: 1...12, maximumDigits: 2)
        var year = try card.integer("expiry_year", in: 0...2099, maximumDigits: 4)
        if year < 100 { year += 2000 }
        guard (2000...2099).contains(year) else {
            throw APError.badField("card.expiry_year", "card.expiry_year must be 2000…2099 (or two digits)")
        }
        let cvv = try card.optionalString("cvv", maximumBytes: 4)
        if let cvv {
            let length = network == .amex ? 4 : 3
            guard cvv.utf8.count == length, cvv.utf8.allSatisfy(Fields.isDigit) else {
                throw APError.badField("card.cvv", "card.cvv must be \(length) digits")
            }
        }
        _ = try card.optionalString("name", maximumBytes: SandboxLimits.maximumTextLength)
        let merchantName = try body.string("merchant_name", maximumBytes: SandboxLimits.maximumTextLength)
        guard !merchantName.isEmpty else { throw APError.badField("merchant_name", "merchant_name must be 1 to 255 bytes") }
        let returnURLText = try body.string("return_url", maximumBytes: SandboxLimits.maximumURLLength)
        guard let returnURL = try? Validate.callback(returnURLText, field: "return_url") else {
            throw APError.badField("return_url", "return_url must be an absolute http or https URL")
        }
        let yy = year % 100, mm = month
        let expiry = (yy < 10 ? "0" : "") + String(yy) + (mm < 10 ? "0" : "") + String(mm)
        return NewAggregatorCardPayment(reference: reference, amount: amount, cardNumber: number, network: network, expiry: expiry,
                                        cvv: cvv, merchantName: merchantName, returnURL: returnURL.url)
    }

    /// A repeat's answer: the payment, or the error; nil when nothing was there yet.
    static func existing(_ outcome: AggregatorCardCreateOutcome?, _ reference: String) throws(APError) -> AggregatorCardSnapshot? {
        switch outcome {
        case nil, .created?: return nil
        case .existing(let snapshot)?: return snapshot
        case .conflict?:
            throw APError(.conflict, "DUPLICATE_REFERENCE", "reference \(reference) was used for a payment of another amount", field: "reference")
        case .full?:
            throw APError(.serviceUnavailable, "SANDBOX_FULL", "The sandbox holds too many card payments; reset it")
        }
    }

    private func uptimeMilliseconds() -> Int64 {
        let elapsed = started.duration(to: .now).components
        return elapsed.seconds * 1_000 + elapsed.attoseconds / 1_000_000_000_000_000
    }
}

/// Card networks by BIN, for numbers outside the test card table (whose rows name their own).
enum CardNetworks {
    static func network(of number: String) -> CardNetworkName? {
        if let card = TestCards.card(number) { return card.network }
        func prefix(_ count: Int) -> Int { Int(number.prefix(count)) ?? -1 }
        if number.hasPrefix("4") { return .visa }
        if (51...55).contains(prefix(2)) || (2221...2720).contains(prefix(4)) { return .mastercard }
        if [34, 37].contains(prefix(2)) { return .amex }
        if (300...305).contains(prefix(3)) || prefix(4) == 3095 || [36, 38, 39].contains(prefix(2)) { return .diners }
        if [60, 65, 81, 82].contains(prefix(2)) || [508, 353, 356].contains(prefix(3)) { return .rupay }
        return nil
    }
}
