import KoshCore

/// The card reads: a card by id, a payment's card, and BIN data (`GET /v1/iins/:iin`).
extension PaymentFlows {
    public func card(id: ID<Card>, merchantID: ID<Merchant>) async throws -> Card {
        guard let card = try await store.transaction({ tx in try await tx.card(id: id, merchantID: merchantID) }) else { throw KoshError.notFound() }
        return card
    }

    /// `GET /v1/payments/:id/card`: 400 for a payment that is not a card payment, as Razorpay answers.
    public func cardOfPayment(paymentID: ID<Payment>, merchantID: ID<Merchant>) async throws -> Card {
        let payment = try await payment(id: paymentID, merchantID: merchantID)
        guard let card = payment.card else {
            throw KoshError.badRequest("The payment was not made with a card", field: "id", reason: "payment_method_not_card")
        }
        return card
    }

    /// What the BIN table knows of an IIN (6 to 9 digits); nil when nothing is known.
    public func iin(_ iin: String) throws -> BINRecord? {
        let cards = try requireCards()
        // Padded with zeros to a number the table can read; only the prefix matters.
        guard let padded = try? CardNumber(Self.luhnCompleted(iin + String(repeating: "0", count: 15 - iin.count))) else { return nil }
        let record = cards.bins.lookup(padded)
        return record.network == .unknown ? nil : record
    }

    /// `digits` with the Luhn check digit appended.
    static func luhnCompleted(_ digits: String) -> String {
        for check in 0...9 where CardNumber.luhnValid(Array((digits + String(check)).utf8)) { return digits + String(check) }
        return digits + "0"
    }
}
