import KoshCore

/// What the checkout page (issue 14) knows about the order it takes payment for.
public struct CheckoutPreferences: Sendable {
    public let merchant: Merchant
    public let order: Order
    /// The customer's saved cards, when the page was opened with a `customer_id` of this merchant.
    public let savedCards: [CardToken]
}

/// A checkout payment as the browser may see it: still open, or over with Razorpay's fields
/// (the signed triple, or `error[…]`).
public enum CheckoutPaymentStatus: Sendable, Equatable {
    case pending(PaymentState)
    case over(CardBrowserResult)
}

/// The checkout's reads and its one rule about what a browser may pay: the order of the
/// merchant whose public key the page carries, in full, while it is not paid. The payments
/// themselves are made by the same use cases as the S2S API's (create payment, card payment,
/// token payment, redirect payment), so a checkout payment is an ordinary payment in every way.
extension PaymentFlows {
    /// The order a checkout opened with `key_id` and `order_id` pays, with what the page shows.
    /// An order of another merchant is "not found"; a paid one is refused as Razorpay does.
    public func checkoutPreferences(merchant: Merchant, orderID: ID<Order>, customerID: ID<Customer>?) async throws -> CheckoutPreferences {
        let order = try await checkoutOrder(merchant: merchant, orderID: orderID)
        var cards: [CardToken] = []
        if let customerID, cardsEnabled {
            // An unknown customer simply has no saved cards: the page must not tell ids apart.
            cards = (try? await tokens(customerID: customerID, merchantID: merchant.id)) ?? []
        }
        return CheckoutPreferences(merchant: merchant, order: order, savedCards: cards.filter(\.isActive))
    }

    /// The order, if the browser may still pay it.
    public func checkoutOrder(merchant: Merchant, orderID: ID<Order>) async throws -> Order {
        let order: Order
        do {
            order = try await self.order(id: orderID, merchantID: merchant.id)
        } catch let error as KoshError where error.code == .notFound {
            throw KoshError.badRequest("The id provided does not exist", field: "order_id")
        }
        guard order.machine.state != .paid else {
            throw KoshError.badRequest("Order has already been paid", field: "order_id", reason: "order_already_paid")
        }
        return order
    }

    /// A payment of the merchant, as its checkout page follows it.
    public func checkoutStatus(merchant: Merchant, paymentID: ID<Payment>) async throws -> CheckoutPaymentStatus {
        let payment = try await self.payment(id: paymentID, merchantID: merchant.id)
        switch payment.state {
        case .authorized, .captured, .refunded, .failed:
            return .over(try await browserResult(payment, callbackURL: nil))
        default:
            return .pending(payment.state)
        }
    }

    /// The `upi://pay` link of a live UPI intent payment of the merchant (its QR code).
    public func checkoutIntentLink(merchant: Merchant, paymentID: ID<Payment>) async throws -> String {
        let payment = try await self.payment(id: paymentID, merchantID: merchant.id)
        guard payment.method == .upi, payment.flow == .intent, let link = payment.upiLink else { throw KoshError.notFound() }
        return link
    }

    var cardsEnabled: Bool { cards != nil }
}

extension PaymentFlows {
    static var abandoned: PaymentFailure { PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment was cancelled by the customer, who chose another way to pay.",
                                          source: "customer", step: "payment_authentication", reason: "payment_cancelled") }

    /// The customer left an open attempt for another (a QR code shown, then a card; a bank's
    /// page abandoned): the attempt fails, so the order takes the next one. Only what has not
    /// reached a bank's decision is cancelled — a card already with its acquirer, or anything
    /// over, is left alone and its status returned. If the payer's app or bank still completes
    /// it (a QR scanned before the switch), the rail's answer arrives for a failed payment and
    /// the merchant's late-authorisation policy refunds (or captures) it, as for any late answer;
    /// the janitor keeps checking it meanwhile.
    public func checkoutAbandon(merchant: Merchant, paymentID: ID<Payment>) async throws -> CheckoutPaymentStatus {
        let payment = try await self.payment(id: paymentID, merchantID: merchant.id)
        switch (payment.method, payment.state) {
        case (.card, .created):
            _ = try await failCardAuthentication(paymentID: paymentID, Self.abandoned)
        case (.upi, .created), (.upi, .pending), (.netbanking, .created), (.netbanking, .pending), (.wallet, .created), (.wallet, .pending):
            try await store.transaction { tx in
                var payment = try await lockedPayment(paymentID, tx)
                guard payment.state == .created || payment.state == .pending else { return }
                let loaded = payment
                _ = try await apply(.fail(Self.abandoned), to: &payment, tx)
                try await save(&payment, loaded: loaded, tx)
            }
        default:
            break
        }
        return try await checkoutStatus(merchant: merchant, paymentID: paymentID)
    }
}
