import KoshCore

/// Cards and card payments of the in-memory store, as `CardsSQL` keeps them.
extension InMemoryTransaction {
    func insertCard(_ card: Card) async throws {
        guard state.cards[card.id] == nil else { throw InMemoryStoreError(description: "duplicate card \(card.id)") }
        state.cards[card.id] = card
    }

    func card(id: ID<Card>, merchantID: ID<Merchant>?) async throws -> Card? {
        state.cards[id].flatMap { merchantID == nil || $0.merchantID == merchantID ? $0 : nil }
    }

    func insertCardPayment(_ cardPayment: CardPayment) async throws {
        guard state.cardPayments[cardPayment.paymentID] == nil else {
            throw InMemoryStoreError(description: "duplicate card payment \(cardPayment.paymentID)")
        }
        state.cardPayments[cardPayment.paymentID] = cardPayment
    }

    func cardPayment(paymentID: ID<Payment>, forUpdate: Bool) async throws -> CardPayment? { state.cardPayments[paymentID] }

    func updateCardPayment(_ cardPayment: CardPayment) async throws {
        guard let stored = state.cardPayments[cardPayment.paymentID], stored.version < cardPayment.version else {
            throw InMemoryStoreError(description: "card payment \(cardPayment.paymentID) was changed by someone else")
        }
        state.cardPayments[cardPayment.paymentID] = cardPayment
    }

    func cardTasksDue(now: UnixMillis, limit: Int) async throws -> [CardPayment] {
        Array(state.cardPayments.values.filter { ($0.taskDueAt ?? .init(Int64.max)) <= now }
            .sorted { ($0.taskDueAt ?? now) < ($1.taskDueAt ?? now) }.prefix(limit))
    }
}
