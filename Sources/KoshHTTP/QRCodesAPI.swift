import Hummingbird
import KoshCore
import KoshFlows
import KoshJSON
import KoshQR

/// `/v1/payments/qr_codes` (Razorpay's QR Codes API, issue 14 point 4), the public PNG of a QR
/// code, and the rails' credit notifications. Registered before `payments/:id`, so
/// `/v1/payments/qr_codes` is never read as a payment id.
struct QRCodesAPI<Store: GatewayStore>: Sendable {
    let flows: PaymentFlows<Store>

    /// PNGs by their `upi://pay` text, shared by every router of the process.
    static var images: QRImageCache { qrImages }

    static var maximumNameLength: Int { 100 }
    /// UPI's per-transaction limit: a fixed amount above it could never be paid.
    static var maximumPaymentAmount: Int64 { 10_000_000 }

    func register(authenticated v1: RouterGroup<MerchantContext>, open router: Router<KoshRequestContext>) {
        v1.post("payments/qr_codes") { request, context in try await self.create(request, context) }
        v1.get("payments/qr_codes") { request, context in
            let codes = try await flows.qrCodes(merchantID: context.merchant.id, filter: try Self.filter(request), page: try page(from: request))
            return jsonResponse(Render.collection(codes.map(Render.qrCode)))
        }
        v1.get("payments/qr_codes/:id") { _, context in
            jsonResponse(Render.qrCode(try await flows.qrCode(id: try MerchantAPI<Store>.id(context, .qrCode), merchantID: context.merchant.id)))
        }
        v1.patch("payments/qr_codes/:id") { request, context in try await self.edit(request, context) }
        v1.post("payments/qr_codes/:id/close") { request, context in
            let id: ID<UPIQRCode> = try MerchantAPI<Store>.id(context, .qrCode)
            let (body, text) = try await RequestBody.parse(request, context: context, allowEmpty: true)
            try body.rejectUnknown()
            let api = MerchantAPI(flows: flows)
            return try api.respond(try await flows.closeQRCode(id: id, merchant: context.merchant,
                                                                idempotency: try api.idempotency(request, context.merchant, text)), context)
        }
        v1.get("payments/qr_codes/:id/payments") { request, context in
            let payments = try await flows.qrCodePayments(id: try MerchantAPI<Store>.id(context, .qrCode), merchantID: context.merchant.id,
                                                          page: try page(from: request))
            return jsonResponse(Render.collection(payments.map(Render.payment)))
        }
        v1.post("payments/qr_codes/:id/test_payment") { request, context in try await self.testPayment(request, context) }

        // Customers' devices load the image without the merchant's key: it shows only what the
        // printed code shows anyway (Kosh's payee VPA, the name, the amount, the code's id).
        router.get("qr/:id/image.png") { _, context in
            let id = try context.parameters.require("id")
            guard Identifiers.isWellFormed(id, .qrCode) else { throw KoshError.notFound() }
            let content = try await flows.qrCodeImageContent(id: ID(id))
            let png: [UInt8]
            do { png = try Self.images.png(for: content) } catch {
                throw KoshError(.serverError, "The QR code image could not be drawn: \(error)")
            }
            var response = Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
            response.headers[.contentType] = "image/png"
            // A code's link never changes, so neither does its image.
            response.headers[.cacheControl] = "public, max-age=86400, immutable"
            return response
        }
        // Rails tell Kosh of payer-initiated payments here; they sign instead of using a key.
        router.post("v1/rails/credits/:connector") { request, context in try await self.credit(request, context) }
    }

    // MARK: Create and edit

    func create(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let merchant = context.merchant
        let (raw, text) = try await RequestBody.parse(request, context: context)
        var body = raw
        let type = try body.string("type", required: true, maxLength: 16)!
        guard type == "upi_qr" else {
            throw KoshError.badRequest(type == "bharat_qr" ? "bharat_qr is not supported; use upi_qr" : "The type must be upi_qr", field: "type")
        }
        let name = try body.string("name", maxLength: Self.maximumNameLength)
        let usageText = try body.string("usage", maxLength: 16) ?? QRUsage.multipleUse.rawValue
        guard let usage = QRUsage(rawValue: usageText) else { throw KoshError.badRequest("The usage must be single_use or multiple_use", field: "usage") }
        let fixed = try Self.flag(&body, "fixed_amount") ?? false
        let amount = try body.int("payment_amount", required: false, range: AmountLimits.minimum...Self.maximumPaymentAmount)
        if fixed && amount == nil { throw KoshError.badRequest("The payment_amount field is required when fixed_amount is true.", field: "payment_amount") }
        if !fixed && amount != nil { throw KoshError.badRequest("payment_amount is allowed only when fixed_amount is true", field: "payment_amount") }
        if usage == .singleUse && !fixed { throw KoshError.badRequest("A single_use QR code must have fixed_amount true", field: "fixed_amount") }
        let description = try body.string("description", maxLength: APILimits.maximumDescriptionLength, allowLineBreaks: true)
        let customer = try body.string("customer_id", maxLength: 64)
        if let customer { guard Identifiers.isWellFormed(customer, .customer) else { throw KoshError.badRequest("The id provided does not exist", field: "customer_id") } }
        let closeBy = try body.int("close_by", required: false)
        if let closeBy {
            guard usage == .singleUse else { throw KoshError.badRequest("close_by is allowed only for single_use QR codes", field: "close_by") }
            guard QRCloseByRule.range(now: flows.clock.now.seconds).contains(closeBy) else {
                throw KoshError.badRequest(PaymentFlows<Store>.closeByMessage, field: "close_by")
            }
        }
        let notes = try body.notes()
        try body.rejectUnknown()
        let input = NewQRCode(name: name, usage: usage, fixedAmount: fixed, paymentAmount: amount, description: description,
                              customerID: customer.map { ID($0) }, closeBy: closeBy.map { UnixSeconds($0) }, notes: notes)
        let api = MerchantAPI(flows: flows)
        return try api.respond(try await flows.createQRCode(merchant: merchant, input, idempotency: try api.idempotency(request, merchant, text)), context)
    }

    func edit(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let id: ID<UPIQRCode> = try MerchantAPI<Store>.id(context, .qrCode)
        let (raw, _) = try await RequestBody.parse(request, context: context)
        var body = raw
        var edit = QRCodeEdit()
        edit.name = try body.string("name", maxLength: Self.maximumNameLength)
        edit.description = try body.string("description", maxLength: APILimits.maximumDescriptionLength, allowLineBreaks: true)
        let notes = try body.notes()
        if body["notes"] != nil { edit.notes = notes }
        edit.closeBy = try body.int("close_by", required: false).map { UnixSeconds($0) }
        try body.rejectUnknown()
        return jsonResponse(Render.qrCode(try await flows.editQRCode(id: id, merchant: context.merchant, edit)))
    }

    /// A boolean as JSON, or as a form sends it (`1`/`0`, `true`/`false`).
    static func flag(_ body: inout RequestBody, _ name: String) throws -> Bool? {
        _ = try? body.int(name, required: false)  // marks the field used; the value is read below
        switch body[name] {
        case nil: return nil
        case .bool(let flag)?: return flag
        case .int(1)?, .string("1")?, .string("true")?: return true
        case .int(0)?, .string("0")?, .string("false")?: return false
        default: throw KoshError.badRequest("The \(name) must be a boolean.", field: name)
        }
    }

    static func filter(_ request: Request) throws -> QRCodeFilter {
        let query = request.uri.queryParameters
        var filter = QRCodeFilter()
        for (name, prefix) in [("customer_id", IDPrefix.customer), ("payment_id", IDPrefix.payment)] {
            let values = query[values: name[...]]
            guard let value = values.first else { continue }
            guard values.count == 1 else { throw KoshError.badRequest("The \(name) parameter may be given once.", field: name) }
            guard Identifiers.isWellFormed(String(value), prefix) else { throw KoshError.badRequest("The id provided does not exist", field: name) }
            if prefix == .customer { filter.customerID = ID(String(value)) } else { filter.paymentID = ID(String(value)) }
        }
        return filter
    }

    // MARK: Payments into QR codes

    /// Test mode only: stands in for a payer's app (the dashboard's "make a test payment").
    func testPayment(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let id: ID<UPIQRCode> = try MerchantAPI<Store>.id(context, .qrCode)
        let (raw, _) = try await RequestBody.parse(request, context: context, allowEmpty: true)
        var body = raw
        let amount = try body.int("amount", required: false, range: 1...Self.maximumPaymentAmount)
        let vpa = try body.string("vpa", maxLength: APILimits.maximumVPALength)
        try body.rejectUnknown()
        let result = try await flows.testQRPayment(merchant: context.merchant, qrID: id, amount: amount, vpa: vpa)
        return jsonResponse(Render.payment(result.payment))
    }

    /// A rail's signed credit notification. Recording it twice changes nothing.
    func credit(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let name = try context.parameters.require("connector")
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let path = request.uri.query.map { "\(request.uri.path)?\($0)" } ?? request.uri.path
        let result = try await flows.railCredited(rail: name, method: "POST", path: path, headers: headers, body: Array(buffer.readableBytesView))
        context.logger.info("rail credit", metadata: ["rail": "\(name)", "payment_id": "\(result.payment.id)", "qr_code_id": "\(result.qrCode.id)",
                                                      "recorded": "\(result.recorded)"])
        return jsonResponse(.object([("status", .string("ok")), ("payment_id", .string(result.payment.id.rawValue)),
                                     ("payment_status", .string(result.payment.state.publicStatus))]))
    }
}

/// One image cache for the process (a few KB per code, least recently used first out).
let qrImages = QRImageCache(capacity: 4_096)

extension Render {
    static func qrCode(_ q: UPIQRCode) -> JSON {
        func text(_ value: String?) -> JSON { value.map(JSON.string) ?? .null }
        return .object([
            ("id", .string(q.id.rawValue)),
            ("entity", .string("qr_code")),
            ("created_at", .int(q.createdAt.value)),
            ("name", text(q.name)),
            ("usage", .string(q.usage.rawValue)),
            ("type", .string(q.type)),
            ("image_url", .string(q.imageURL)),
            ("image_content", .string(q.imageContent)),
            ("payment_amount", q.paymentAmount.map(JSON.int) ?? .null),
            ("status", .string(q.status.rawValue)),
            ("description", text(q.description)),
            ("fixed_amount", .bool(q.fixedAmount)),
            ("payments_amount_received", .int(q.paymentsAmountReceived)),
            ("payments_count_received", .int(q.paymentsCountReceived)),
            ("notes", q.notes.json),
            ("customer_id", text(q.customerID?.rawValue)),
            ("close_by", q.closeBy.map { JSON.int($0.value) } ?? .null),
            ("closed_at", q.closedAt.map { JSON.int($0.value) } ?? .null),
            ("close_reason", text(q.closeReason?.rawValue)),
        ])
    }
}
