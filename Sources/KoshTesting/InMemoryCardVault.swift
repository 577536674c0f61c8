import KoshCore
import KoshVault
import Synchronization

/// A `CardVault` in memory for flow tests: the vault's own validation (`VaultValidation`), its
/// CVV holding (`HeldCVVs`: taken once, gone after ten minutes of `clock`), retention by
/// `clock` with `purge(now:)`, and purged tokens answering `.purged`. No ciphertext: it is a
/// fake, for tests only.
public final class InMemoryCardVault: CardVault, Sendable {
    struct Stored {
        let card: VaultCard
        var retention: CardRetention
    }

    struct State {
        var cards: [String: Stored] = [:]
        var purged: Set<String> = []
        /// Calls made, by name (`tokenize`, `detokenize`, …), for tests that count them.
        var calls: [String] = []
    }

    public let clock: any KoshClock
    private let fingerprinter = CardFingerprinter.random()
    private let cvvs: HeldCVVs
    private let state = Mutex(State())

    public init(clock: any KoshClock = SystemClock()) {
        self.clock = clock
        self.cvvs = HeldCVVs(clock: clock)
    }

    public func tokenize(_ card: VaultCard, cvv: String?, retention: CardRetention) async throws -> TokenizedCard {
        let card = try VaultValidation.check(card, now: clock.now)
        if let cvv { try VaultValidation.checkCVV(cvv) }
        try VaultValidation.checkRetention(retention)
        let token = VaultToken.make()
        state.withLock {
            $0.cards[token] = Stored(card: card, retention: retention)
            $0.calls.append("tokenize")
        }
        if let cvv { try cvvs.hold(cvv, token: token) }
        return TokenizedCard(token: token, fingerprint: fingerprinter.fingerprint(card.number), iin: String(card.number.prefix(6)),
                             last4: String(card.number.suffix(4)))
    }

    public func attachCVV(token: String, cvv: String) async throws {
        try VaultValidation.checkCVV(cvv)
        _ = try live(token, call: "attachCVV")
        try cvvs.hold(cvv, token: token)
    }

    public func detokenize(token: String, takeCVV: Bool) async throws -> (card: VaultCard, cvv: String?) {
        let card = try live(token, call: "detokenize").card
        return (card, takeCVV ? cvvs.take(token: token) : nil)
    }

    public func setRetention(token: String, _ retention: CardRetention) async throws {
        try VaultValidation.checkRetention(retention)
        _ = try live(token, call: "setRetention")
        state.withLock { $0.cards[token]?.retention = retention }
    }

    public func purge(token: String) async throws {
        try state.withLock { state throws(CardVaultError) in
            state.calls.append("purge")
            if state.cards.removeValue(forKey: token) != nil {
                state.purged.insert(token)
            } else if !state.purged.contains(token) {
                throw .notFound
            }
        }
        cvvs.drop(token: token)
    }

    /// Deletes every card whose retention has passed at `now` (cards on file never); answers how many.
    @discardableResult
    public func purge(now: UnixMillis) -> Int {
        let tokens = state.withLock { state -> [String] in
            let due = state.cards.filter { Self.isPast($0.value.retention, now: now.value) }.map(\.key)
            for token in due {
                state.cards[token] = nil
                state.purged.insert(token)
            }
            return due
        }
        for token in tokens { cvvs.drop(token: token) }
        cvvs.dropExpired()
        return tokens.count
    }

    /// Cards held now (purged ones not counted).
    public var count: Int { state.withLock { $0.cards.count } }
    /// The retention of a card, if it is held.
    public func retention(of token: String) -> CardRetention? { state.withLock { $0.cards[token]?.retention } }
    /// Every call made so far, in order.
    public var calls: [String] { state.withLock { $0.calls } }

    private static func isPast(_ retention: CardRetention, now: Int64) -> Bool {
        if case .until(let seconds) = retention { return seconds.value * 1000 < now }
        return false
    }

    private func live(_ token: String, call: String) throws(CardVaultError) -> Stored {
        let now = clock.nowMillis()
        return try state.withLock { state throws(CardVaultError) -> Stored in
            state.calls.append(call)
            guard let stored = state.cards[token] else { throw state.purged.contains(token) ? .purged : .notFound }
            guard !Self.isPast(stored.retention, now: now) else { throw .purged }
            return stored
        }
    }
}
