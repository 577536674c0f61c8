import KoshCore

/// Work a command leaves to run after its transaction commits: calls to rails, which never
/// happen while a database transaction waits on them. Each is safe to run twice; when one
/// fails, the janitor finishes it (the payment or refund is due for its next pass).
public enum FollowUp: Sendable, Hashable {
    /// Hand a `created` payment to its rail (`submit`).
    case submit(paymentID: ID<Payment>)
    /// Send a pending refund to its rail (`sendRefund`).
    case sendRefund(refundID: ID<Refund>)
    /// Send a card payment's capture or void to the card network (`sendCardTask`).
    case sendCardTask(paymentID: ID<Payment>)
    /// Tell the router how a payment ended on its route (success-rate routing).
    case recordRouteOutcome(connector: String, success: Bool)
    /// Carry out an authorised payment's capture setting (`settleCapture`): auto-capture.
    case settleCapture(paymentID: ID<Payment>)
}

/// What a follow-up left behind, to refresh a command's reply.
enum FollowUpResult: Sendable {
    case payment(Payment)
    case refund(Refund)
    case nothing
}

extension PaymentFlows {
    func run(_ followUp: FollowUp) async throws -> FollowUpResult {
        switch followUp {
        case .submit(let paymentID): return .payment(try await submit(paymentID: paymentID))
        case .sendRefund(let refundID): return .refund(try await sendRefund(refundID: refundID))
        case .sendCardTask(let paymentID):
            try await sendCardTask(paymentID: paymentID)
            return .nothing
        case .settleCapture(let paymentID):
            return .payment(try await settleCapture(paymentID: paymentID))
        case .recordRouteOutcome(let connector, let success):
            rails.recordOutcome(connector, success: success)
            return .nothing
        }
    }

    /// Runs follow-ups in order; the first failure stops the rest (the janitor finishes them)
    /// and is returned with the results so far.
    func run(_ followUps: [FollowUp]) async -> (results: [FollowUpResult], failure: (any Error)?) {
        var results: [FollowUpResult] = []
        for followUp in followUps {
            do {
                results.append(try await run(followUp))
            } catch {
                return (results, error)
            }
        }
        return (results, nil)
    }
}
