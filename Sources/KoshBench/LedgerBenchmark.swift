import Foundation
import KoshCore
import KoshStorage

/// Journal postings per second through the storage layer: each entry is a balanced
/// three-posting fee entry (merchant, fee revenue, GST) with its stored balances updated in
/// the same transaction, `batch` entries per transaction.
public enum LedgerBenchmark {
    public struct Result: Sendable {
        public let entries: Int
        public let postings: Int
        public let batch: Int
        public let seconds: Double
        public var entriesPerSecond: Double { Double(entries) / seconds }
        public var postingsPerSecond: Double { Double(postings) / seconds }
    }

    public static func run(db: any SQLDatabase, entries: Int, batch: Int, merchants: Int = 100) async throws -> Result {
        precondition(entries > 0 && batch > 0 && merchants > 0)
        let store = SQLStore(db: db)
        let started = ContinuousClock.now
        var written = 0
        var postings = 0
        while written < entries {
            let n = min(batch, entries - written)
            let base = written
            postings += try await store.transaction { tx in
                var count = 0
                for i in 0..<n {
                    let entry = try PostingRules.fee(id: Identifiers.make(.journalEntry), paymentID: ID("pay_bench\(base + i)"),
                                                     merchantID: ID("mer_bench\((base + i) % merchants)"),
                                                     fee: FeeBreakdown(base: 200, tax: 36), currency: .inr, at: 0)
                    try await tx.post(entry)
                    count += entry.postings.count
                }
                return count
            }
            written += n
        }
        let seconds = Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000
        return Result(entries: written, postings: postings, batch: batch, seconds: seconds)
    }
}
