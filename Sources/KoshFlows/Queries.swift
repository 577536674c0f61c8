import KoshCore

/// The reads behind the API's GET routes. Each runs in its own read transaction; a missing
/// entity (or one of another merchant) is a 404.
extension PaymentFlows {
    public func order(id: ID<Order>, merchantID: ID<Merchant>) async throws -> Order {
        let order = try await store.transaction { tx in try await tx.order(id: id, merchantID: merchantID, forUpdate: false) }
        guard let order else { throw KoshError.notFound() }
        return order
    }

    public func orders(merchantID: ID<Merchant>, page: Page) async throws -> [Order] {
        try await store.transaction { tx in try await tx.orders(merchantID: merchantID, page: page) }
    }

    /// A payment by id; of this merchant only, when `merchantID` is given.
    public func payment(id: ID<Payment>, merchantID: ID<Merchant>? = nil) async throws -> Payment {
        let payment = try await store.transaction { tx in try await tx.payment(id: id, merchantID: merchantID, forUpdate: false) }
        guard let payment else { throw KoshError.notFound() }
        return payment
    }

    /// The merchant's payments, or an order's (404 when the order is not the merchant's).
    public func payments(merchantID: ID<Merchant>, orderID: ID<Order>? = nil, page: Page) async throws -> [Payment] {
        try await store.transaction { tx in
            if let orderID, try await tx.order(id: orderID, merchantID: merchantID, forUpdate: false) == nil { throw KoshError.notFound() }
            return try await tx.payments(merchantID: merchantID, orderID: orderID, page: page)
        }
    }

    /// The routes tried for a payment of the merchant, in order.
    public func attempts(paymentID: ID<Payment>, merchantID: ID<Merchant>) async throws -> [PaymentAttempt] {
        try await store.transaction { tx in
            guard try await tx.payment(id: paymentID, merchantID: merchantID, forUpdate: false) != nil else { throw KoshError.notFound() }
            return try await tx.attempts(paymentID: paymentID)
        }
    }

    public func refunds(merchantID: ID<Merchant>, paymentID: ID<Payment>? = nil, page: Page) async throws -> [Refund] {
        try await store.transaction { tx in
            if let paymentID, try await tx.payment(id: paymentID, merchantID: merchantID, forUpdate: false) == nil { throw KoshError.notFound() }
            return try await tx.refunds(merchantID: merchantID, paymentID: paymentID, page: page)
        }
    }

    /// A refund of the merchant; of this payment only, when `paymentID` is given.
    public func refund(id: ID<Refund>, merchantID: ID<Merchant>, paymentID: ID<Payment>? = nil) async throws -> Refund {
        let refund = try await store.transaction { tx -> Refund? in
            if let paymentID, try await tx.payment(id: paymentID, merchantID: merchantID, forUpdate: false) == nil { return nil }
            return try await tx.refund(id: id, merchantID: merchantID, forUpdate: false)
        }
        guard let refund, paymentID == nil || refund.paymentID == paymentID else { throw KoshError.notFound() }
        return refund
    }

    /// Live mode's rail downtimes, newest first.
    public func downtimes() -> [Downtime] { rails.downtimes() }

    /// Who owns a VPA, from the merchant's mode's rail. A rail that does not answer is a 502.
    public func lookup(vpa: String, mode: Mode) async throws -> VPALookup {
        do {
            return try await rails.lookup(mode: mode, vpa: vpa)
        } catch let error as KoshError {
            throw error
        } catch {
            throw KoshError(.gatewayError, "The UPI switch did not answer; please retry", field: "vpa", source: "gateway",
                            step: "payment_initiation", reason: "gateway_technical_error")
        }
    }

    /// The rail a callback names; 404 when no rail of this server has that name.
    public func callbackRail(named name: String) throws -> any PaymentRail {
        guard let rail = rails.rail(named: name) else { throw KoshError(.notFound, "No rail is called \(name)", reason: "unknown_rail") }
        return rail
    }
}
