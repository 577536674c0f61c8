import KoshCore

/// SQL conditions generated from the core's lists of payment states, so the states that hold
/// an order (or that the janitor watches) are written down once (`PaymentState.holdingOrder`).
enum PaymentStatesSQL {
    static func statusIn(_ states: [PaymentState]) -> String {
        "status IN (" + states.map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")"
    }

    /// A payment that holds its order (`Payment.holdsOrder`).
    static let holdsOrder = statusIn(PaymentState.holdingOrder) + " AND auto_refunded = 0"

    /// A payment the janitor may still act on (`PaymentState.watched`).
    static let watched = statusIn(PaymentState.watched)
}
