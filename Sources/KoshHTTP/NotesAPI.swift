import Hummingbird
import KoshCore
import KoshFlows
import KoshJSON

/// The SDK's `order.edit`, `payment.edit` and `refund.edit`: `PATCH` with `notes` (at most 15
/// pairs, replacing the old ones, as Razorpay does; null or `[]` clears them); any other field is refused.
struct NotesAPI<Store: GatewayStore>: Sendable {
    let flows: PaymentFlows<Store>

    func register(_ v1: RouterGroup<MerchantContext>) {
        v1.patch("orders/:id") { request, context in
            let notes = try await Self.notes(request, context)
            let order = try await flows.editNotes(orderID: try MerchantAPI<Store>.id(context, .order), merchantID: context.merchant.id, notes)
            return jsonResponse(Render.order(order))
        }
        v1.patch("payments/:id") { request, context in
            let notes = try await Self.notes(request, context)
            let payment = try await flows.editNotes(paymentID: try MerchantAPI<Store>.id(context, .payment), merchantID: context.merchant.id, notes)
            return jsonResponse(Render.payment(payment))
        }
        v1.patch("refunds/:id") { request, context in
            let notes = try await Self.notes(request, context)
            let refund = try await flows.editNotes(refundID: try MerchantAPI<Store>.id(context, .refund), merchantID: context.merchant.id, notes)
            return jsonResponse(Render.refund(refund))
        }
    }

    static func notes(_ request: Request, _ context: MerchantContext) async throws -> Notes {
        let (raw, _) = try await RequestBody.parse(request, context: context)
        var body = raw
        // `notes` must be sent; null or [] clears them, as at creation.
        guard body.fields.contains(where: { $0.0 == "notes" }) else { throw KoshError.badRequest("The notes field is required.", field: "notes") }
        let notes = try body.notes()
        try body.rejectUnknown()
        return notes
    }
}
