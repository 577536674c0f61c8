import KoshCore

extension PaymentFlows {
    /// `PATCH /v1/orders/:id` (the SDK's `order.edit`): replaces the order's notes.
    public func editNotes(orderID: ID<Order>, merchantID: ID<Merchant>, _ notes: Notes) async throws -> Order {
        try await store.transaction { tx in
            guard var order = try await tx.order(id: orderID, merchantID: merchantID, forUpdate: true) else { throw KoshError.notFound() }
            order.notes = notes
            try await tx.updateOrder(order)
            return order
        }
    }

    /// `PATCH /v1/payments/:id` (`payment.edit`): replaces the payment's notes, whatever its state.
    public func editNotes(paymentID: ID<Payment>, merchantID: ID<Merchant>, _ notes: Notes) async throws -> Payment {
        try await store.transaction { tx in
            var payment = try await lockedPayment(paymentID, merchantID: merchantID, tx)
            let loaded = payment
            payment.notes = notes
            try await save(&payment, loaded: loaded, tx)
            return payment
        }
    }

    /// `PATCH /v1/refunds/:id` (`refund.edit`): replaces the refund's notes.
    public func editNotes(refundID: ID<Refund>, merchantID: ID<Merchant>, _ notes: Notes) async throws -> Refund {
        try await store.transaction { tx in
            guard var refund = try await tx.refund(id: refundID, merchantID: merchantID, forUpdate: true) else { throw KoshError.notFound() }
            refund.notes = notes
            refund.version += 1
            try await tx.updateRefund(refund)
            return refund
        }
    }
}
