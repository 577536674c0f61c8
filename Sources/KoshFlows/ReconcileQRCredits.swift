import KoshCore
import Synchronization

extension PaymentFlows {
    /// The janitor's QR work: codes whose close_by passed are closed, the switch is told where
    /// credits go (when it was not yet), and credits whose notification was lost are recorded.
    public func runQRChecks() async throws {
        _ = try await closeExpiredQRCodes()
        await registerQRPayee()
        _ = try await reconcileQRCredits()
    }

    /// The janitor's QR reconciliation: credits the switch made to Kosh's QR payee whose
    /// notification never arrived (Kosh was down through the switch's retries, the callback was
    /// dropped) are recorded from the switch's own list, as a notification would have recorded
    /// them. A credit already recorded is skipped with one read. Returns how many it recorded.
    @discardableResult
    public func reconcileQRCredits() async throws -> Int {
        guard let rail = payerInitiatedRail(mode: .live) else { return 0 }
        let recorded = Counter()
        _ = try await rail.reconcileCredits { credit in
            let known = try await store.transaction { tx in try await tx.qrPayment(rail: rail.name, railTransactionID: credit.transactionID) }
            guard known == nil else { return }
            do {
                if try await recordQRCredit(credit, rail: rail.name).recorded { recorded.add() }
            } catch let error as KoshError where error.code == .notFound {
                // No such QR code here (another PSP's reference under our handle): nothing to record.
            }
        }
        return recorded.value
    }
}

/// A count kept across the rail's callbacks.
final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
