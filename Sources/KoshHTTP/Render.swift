import KoshCore
import KoshJSON

/// Razorpay-shaped JSON for Kosh's entities.
enum Render {
    static func downtime(_ d: Downtime) -> JSON {
        .object([
            ("id", .string(d.id)),
            ("entity", .string("payment.downtime")),
            ("method", .string(d.method.rawValue)),
            ("begin", .int(d.begin)),
            ("end", d.end.map(JSON.int) ?? .null),
            ("status", .string(d.status)),
            ("scheduled", .bool(false)),
            ("severity", .string(d.severity)),
            ("instrument", .object([("psp", .string(d.connector))])),
            ("created_at", .int(d.createdAt)),
            ("updated_at", .int(d.updatedAt)),
        ])
    }

    static func attempt(_ a: PaymentAttempt) -> JSON {
        func text(_ value: String?) -> JSON { value.map(JSON.string) ?? .null }
        return .object([
            ("id", .string(a.id.rawValue)),
            ("entity", .string("payment.attempt")),
            ("payment_id", .string(a.paymentID.rawValue)),
            ("seq", .int(a.seq)),
            ("connector", .string(a.connector)),
            ("reason", .string(a.reason)),
            ("status", .string(a.status.rawValue)),
            ("upstream_reference", text(a.upstreamReference)),
            ("error_code", text(a.errorCode)),
            ("error_description", text(a.errorDescription)),
            ("latency_ms", a.latencyMillis.map(JSON.int) ?? .null),
            ("created_at", .int(a.createdAt.seconds.value)),
        ])
    }

    static func order(_ o: Order) -> JSON {
        .object([
            ("id", .string(o.id.rawValue)),
            ("entity", .string("order")),
            ("amount", .int(o.amount)),
            ("amount_paid", .int(o.machine.amountPaid)),
            ("amount_due", .int(o.machine.amountDue)),
            ("currency", .string(o.currency.rawValue)),
            ("receipt", o.receipt.map(JSON.string) ?? .null),
            ("offer_id", .null),
            ("status", .string(o.machine.state.rawValue)),
            ("attempts", .int(Int64(o.machine.attempts))),
            ("notes", o.notes.json),
            ("created_at", .int(o.createdAt.value)),
        ])
    }

    static func payment(_ p: Payment) -> JSON {
        let failure = p.machine.failure
        let fee = p.machine.fee
        let amountRefunded: Int64 = p.state == .voided ? p.amount : p.machine.amountRefunded
        func text(_ value: String?) -> JSON { value.map(JSON.string) ?? .null }
        var pairs: [(String, JSON)] = []
        pairs.append(("id", .string(p.id.rawValue)))
        pairs.append(("entity", .string("payment")))
        pairs.append(("amount", .int(p.amount)))
        pairs.append(("currency", .string(p.currency.rawValue)))
        pairs.append(("status", .string(p.state.publicStatus)))
        pairs.append(("order_id", .string(p.orderID.rawValue)))
        pairs.append(("invoice_id", .null))
        pairs.append(("international", .bool(p.card?.international ?? false)))
        pairs.append(("method", .string(p.method.rawValue)))
        pairs.append(("amount_refunded", .int(amountRefunded)))
        pairs.append(("refund_status", text(p.machine.refundStatus)))
        pairs.append(("captured", .bool(p.machine.isCaptured)))
        pairs.append(("description", text(p.description)))
        pairs.append(("card_id", text(p.card?.id.rawValue)))
        pairs.append(("bank", text(p.bank)))
        pairs.append(("wallet", text(p.wallet)))
        pairs.append(("vpa", text(p.vpa)))
        pairs.append(("email", text(p.email)))
        pairs.append(("contact", text(p.contact)))
        pairs.append(("notes", p.notes.json))
        pairs.append(("fee", fee.map { JSON.int($0.total) } ?? .null))
        pairs.append(("tax", fee.map { JSON.int($0.tax) } ?? .null))
        pairs.append(("error_code", text(failure?.code)))
        pairs.append(("error_description", text(failure?.description)))
        pairs.append(("error_source", text(failure?.source)))
        pairs.append(("error_step", text(failure?.step)))
        pairs.append(("error_reason", text(failure?.reason)))
        // Both present for every method (null where they do not apply), so one schema describes every payment.
        pairs.append(("card", p.card.map(Render.card) ?? .null))
        pairs.append(("acquirer_data", .object([("rrn", text(p.railReference)), ("auth_code", text(p.authCode))])))
        pairs.append(("upi", p.method == .upi ? .object([("vpa", text(p.vpa))]) : .null))
        pairs.append(("created_at", .int(p.createdAt.value)))
        return .object(pairs)
    }

    /// Razorpay's card entity: never more of the number than its last 4.
    static func card(_ c: Card) -> JSON {
        .object([
            ("id", .string(c.id.rawValue)),
            ("entity", .string("card")),
            ("name", c.name.map(JSON.string) ?? .string("")),
            ("last4", .string(c.last4)),
            ("network", .string(c.network.displayName)),
            ("type", .string(c.type.rawValue)),
            ("issuer", c.issuer.map(JSON.string) ?? .null),
            ("international", .bool(c.international)),
            ("emi", .bool(c.emi)),
            ("sub_type", .string(c.subType)),
            ("token_iin", .null),
        ])
    }

    static func refund(_ r: Refund) -> JSON {
        .object([
            ("id", .string(r.id.rawValue)),
            ("entity", .string("refund")),
            ("amount", .int(r.amount)),
            ("currency", .string(r.currency.rawValue)),
            ("payment_id", .string(r.paymentID.rawValue)),
            ("notes", r.notes.json),
            ("receipt", r.receipt.map(JSON.string) ?? .null),
            ("acquirer_data", .object([("arn", r.railReference.map(JSON.string) ?? .null)])),
            ("created_at", .int(r.createdAt.value)),
            ("batch_id", .null),
            ("status", .string(r.machine.state.rawValue)),
            ("speed_processed", .string("normal")),
            ("speed_requested", .string(r.speedRequested)),
        ])
    }

    static func collection(_ items: [JSON]) -> JSON {
        .object([("entity", .string("collection")), ("count", .int(Int64(items.count))), ("items", .array(items))])
    }
}

extension Notes {
    /// `notes` as Razorpay renders it: an object, or `[]` when empty (Razorpay's own quirk).
    var json: JSON {
        pairs.isEmpty ? .array([]) : .object(pairs.map { ($0.key, .string($0.value)) })
    }
}
