import Crypto
import Foundation
import KoshCore
import KoshJSON
import KoshTesting
import Testing
@testable import KoshVault

@Suite("Vault engine", .timeLimit(.minutes(2)))
struct EngineTests {
    @Test("a card sealed under a data key opens again; the data key wrapped under a master key unwraps again")
    func envelopeRoundTrip() throws {
        let master = SymmetricKey(size: .bits256)
        let dataKey = Envelope.newDataKey()
        let wrapped = try Envelope.wrap(dataKey, id: "dk_1", under: master)
        let unwrapped = try Envelope.unwrap(wrapped, id: "dk_1", under: master)
        #expect(unwrapped == dataKey)
        // Bound to its row and its key.
        #expect(throws: VaultCryptoError.self) { try Envelope.unwrap(wrapped, id: "dk_2", under: master) }
        #expect(throws: VaultCryptoError.self) { try Envelope.unwrap(wrapped, id: "dk_1", under: SymmetricKey(size: .bits256)) }

        let card = VaultCard(number: "4111111111111111", expiryMonth: 3, expiryYear: 2031, name: "Asha Rao")
        let sealed = try Envelope.seal(card, token: "vt_a", under: unwrapped)
        #expect(try Envelope.open(sealed, token: "vt_a", under: dataKey) == card)
        #expect(!Data(sealed).contains("4111111111111111"))
        #expect(throws: VaultCryptoError.self) { try Envelope.open(sealed, token: "vt_b", under: dataKey) }
        var tampered = sealed
        tampered[20] ^= 1
        #expect(throws: VaultCryptoError.self) { try Envelope.open(tampered, token: "vt_a", under: dataKey) }
        let nameless = VaultCard(number: "5555555555554444", expiryMonth: 1, expiryYear: 2029, name: nil)
        #expect(try Envelope.open(Envelope.seal(nameless, token: "vt_c", under: dataKey), token: "vt_c", under: dataKey) == nameless)
    }

    @Test("through the engine: tokenise, detokenise, the same PAN gives the same fingerprint and a new token")
    func tokenizeRoundTrip() async throws {
        let vault = try await openVault()
        let card = testCard(seed: 1)
        let first = try await vault.tokenize(card, cvv: nil, retention: .cardOnFile)
        let again = try await vault.tokenize(VaultCard(number: card.number, expiryMonth: 1, expiryYear: 2031, name: nil), cvv: nil,
                                             retention: .cardOnFile)
        let other = try await vault.tokenize(testCard(seed: 2), cvv: nil, retention: .cardOnFile)
        #expect(first.token.hasPrefix("vt_") && VaultToken.isWellFormed(first.token))
        #expect(first.token != again.token)
        #expect(first.fingerprint == again.fingerprint)
        #expect(first.fingerprint != other.fingerprint)
        #expect(first.fingerprint.utf8.count == 64)
        #expect(first.iin == String(card.number.prefix(6)) && first.last4 == String(card.number.suffix(4)))
        #expect(try await vault.detokenize(token: first.token, takeCVV: false).card == card)
        // A second vault (other keys) fingerprints differently: the fingerprint is keyed.
        let elsewhere = try await openVault()
        #expect(try await elsewhere.tokenize(card, cvv: nil, retention: .cardOnFile).fingerprint != first.fingerprint)
        await vault.closeRemovingDirectory()
        await elsewhere.closeRemovingDirectory()
    }

    @Test("vault.db and its WAL hold no PAN, no last 8 digits, no CVV, no plaintext card JSON")
    func noCardDataOnDisk() async throws {
        let directory = try temporaryVaultDirectory()
        let vault = try await openVault(directory: directory)
        var cards: [(VaultCard, String)] = []
        var known: [String] = []
        for seed in 0..<12 {
            let card = VaultCard(number: testCardNumber(prefix: seed % 2 == 0 ? "410028" : "550067", seed: seed), expiryMonth: 11,
                                 expiryYear: 2032, name: "Holder \(seed)")
            // 4-digit CVVs that are no part of any number: a match could only be a leak.
            let cvv = String(7301 + seed * 7)
            let tokenized = try await vault.tokenize(card, cvv: cvv, retention: seed % 3 == 0 ? .cardOnFile : .until(2_000_000_000))
            cards.append((card, cvv))
            known += [tokenized.token, tokenized.fingerprint]
        }
        let files = ["vault.db", "vault.db-wal"].map { (directory as NSString).appendingPathComponent($0) }
        #expect(FileManager.default.fileExists(atPath: files[1]), "the WAL is where fresh writes sit")
        let bytes = try files.filter { FileManager.default.fileExists(atPath: $0) }.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        for data in bytes {
            // Tokens and fingerprints are hex and may hold any digits: blank them before looking for digits.
            let searched = data.blanking(known)
            for (card, cvv) in cards {
                #expect(!searched.contains(card.number))
                #expect(!searched.contains(String(card.number.suffix(8))))
                #expect(!searched.contains(cvv))
                #expect(!searched.contains(card.name!))
            }
            #expect(!data.contains("\"number\""))
            #expect(!data.contains("cvv"))
        }
        // The search itself works: what is stored in the clear (tokens, fingerprints) is found.
        let everything = bytes.reduce(Data(), +)
        #expect(known.allSatisfy { everything.contains($0) })
        for file in files + [(directory as NSString).appendingPathComponent("vault-keys.json")] where FileManager.default.fileExists(atPath: file) {
            let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file) is \(String(mode ?? 0, radix: 8))")
        }
        // Everything still detokenises, CVVs included (from memory).
        for (index, (card, cvv)) in cards.enumerated() {
            let (opened, heldCVV) = try await vault.detokenize(token: known[index * 2], takeCVV: true)
            #expect(opened == card && heldCVV == cvv)
        }
        await vault.closeRemovingDirectory()
    }

    @Test("a CVV is taken once, replaced by a later one, and gone after ten minutes")
    func cvvTakenOnce() async throws {
        let clock = ManualClock()
        let vault = try await openVault(clock: clock)
        let card = try await vault.tokenize(testCard(seed: 3), cvv: "123", retention: .cardOnFile)
        #expect(try await vault.detokenize(token: card.token, takeCVV: false).cvv == nil, "not taken unless asked")
        #expect(try await vault.detokenize(token: card.token, takeCVV: true).cvv == "123")
        #expect(try await vault.detokenize(token: card.token, takeCVV: true).cvv == nil, "taken once")

        try await vault.attachCVV(token: card.token, cvv: "456")
        try await vault.attachCVV(token: card.token, cvv: "7890")
        clock.advance(byMillis: HeldCVVs.lifetimeMillis - 1_000)
        #expect(try await vault.detokenize(token: card.token, takeCVV: true).cvv == "7890")

        try await vault.attachCVV(token: card.token, cvv: "321")
        clock.advance(byMillis: HeldCVVs.lifetimeMillis + 1)
        #expect(try await vault.detokenize(token: card.token, takeCVV: true).cvv == nil, "gone after ten minutes")
        try await vault.attachCVV(token: card.token, cvv: "654")
        clock.advance(byMillis: HeldCVVs.lifetimeMillis + 1)
        try await vault.purgeExpired()
        #expect(vault.cvvs.count == 0, "the purge forgets expired CVVs")
        await #expect(throws: CardVaultError.notFound) { try await vault.attachCVV(token: VaultToken.make(), cvv: "123") }
        await vault.closeRemovingDirectory()
    }

    @Test("purge by retention: past cards go (410 after), cards on file and later ones stay, empty data keys are shredded")
    func purgeByRetention() async throws {
        let clock = ManualClock()
        let vault = try await openVault(clock: clock)
        let now = clock.now.seconds.value
        let soon = try await vault.tokenize(testCard(seed: 4), cvv: "111", retention: .until(UnixSeconds(now + 60)))
        let onFile = try await vault.tokenize(testCard(seed: 5), cvv: nil, retention: .cardOnFile)
        let later = try await vault.tokenize(testCard(seed: 6), cvv: nil, retention: .until(UnixSeconds(now + 3_600)))
        let extended = try await vault.tokenize(testCard(seed: 7), cvv: nil, retention: .until(UnixSeconds(now + 60)))
        try await vault.setRetention(token: extended.token, .cardOnFile)

        #expect(try await vault.purge(now: clock.now) == 0)
        clock.advance(bySeconds: 61)
        // Past its retention it is purged for every caller, swept or not.
        await #expect(throws: CardVaultError.purged) { try await vault.detokenize(token: soon.token, takeCVV: true) }
        #expect(try await vault.purge(now: clock.now) == 1)
        await #expect(throws: CardVaultError.purged) { try await vault.detokenize(token: soon.token, takeCVV: true) }
        await #expect(throws: CardVaultError.purged) { try await vault.setRetention(token: soon.token, .cardOnFile) }
        #expect(try await vault.detokenize(token: onFile.token, takeCVV: false).card == testCard(seed: 5))
        #expect(try await vault.detokenize(token: later.token, takeCVV: false).card == testCard(seed: 6))
        #expect(try await vault.detokenize(token: extended.token, takeCVV: false).card == testCard(seed: 7))

        // A day later everything with a retention is gone; the old day's data key still seals cards on file.
        clock.advance(bySeconds: 86_400)
        _ = try await vault.tokenize(testCard(seed: 8), cvv: nil, retention: .until(UnixSeconds(clock.now.seconds.value + 10)))
        #expect(try await vault.purge(now: clock.now) == 1)
        clock.advance(bySeconds: 60)
        #expect(try await vault.purge(now: clock.now) == 1, "the new day's key seals nothing now, but it is still the sealing key")
        var status = try await vault.status()
        #expect(status.cards == 2 && status.cardsOnFile == 2 && status.purgedTokens == 3)
        #expect(status.dataKeysByMasterVersion[1] == 2)

        // Deleting the cards on file leaves the first day's key sealing nothing: it is shredded.
        try await vault.purge(token: onFile.token)
        try await vault.purge(token: extended.token)
        try await vault.purge(token: extended.token)  // again: fine
        await #expect(throws: CardVaultError.notFound) { try await vault.purge(token: VaultToken.make()) }
        #expect(try await vault.purge(now: clock.now) == 0)
        status = try await vault.status()
        #expect(status.cards == 0 && status.dataKeysByMasterVersion[1] == 1)
        await #expect(throws: CardVaultError.purged) { try await vault.detokenize(token: onFile.token, takeCVV: false) }
        await #expect(throws: CardVaultError.notFound) { try await vault.detokenize(token: VaultToken.make(), takeCVV: false) }
        await #expect(throws: CardVaultError.notFound) { try await vault.detokenize(token: "vt_../../etc", takeCVV: false) }
        await vault.closeRemovingDirectory()
    }

    static let refusals: [(VaultCard, String?, String)] = [
        (VaultCard(number: "4111111111111112", expiryMonth: 12, expiryYear: 2030, name: nil), nil, "number"),
        (VaultCard(number: "41111111111", expiryMonth: 12, expiryYear: 2030, name: nil), nil, "number"),
        (VaultCard(number: "4111 1111 1111 1111", expiryMonth: 12, expiryYear: 2030, name: nil), nil, "number"),
        (VaultCard(number: "41111111111111111111", expiryMonth: 12, expiryYear: 2030, name: nil), nil, "number"),
        (VaultCard(number: "4111111111111111", expiryMonth: 0, expiryYear: 2030, name: nil), nil, "expiry_month"),
        (VaultCard(number: "4111111111111111", expiryMonth: 13, expiryYear: 2030, name: nil), nil, "expiry_month"),
        (VaultCard(number: "4111111111111111", expiryMonth: 12, expiryYear: 30, name: nil), nil, "expiry_year"),
        (VaultCard(number: "4111111111111111", expiryMonth: 12, expiryYear: 2100, name: nil), nil, "expiry_year"),
        (VaultCard(number: "4111111111111111", expiryMonth: 12, expiryYear: 2024, name: nil), nil, "expiry_year"),
        (VaultCard(number: "4111111111111111", expiryMonth: 5, expiryYear: 2025, name: nil), nil, "expiry_month"),
        (VaultCard(number: "4111111111111111", expiryMonth: 12, expiryYear: 2030, name: String(repeating: "a", count: 101)), nil, "name"),
        (VaultCard(number: "4111111111111111", expiryMonth: 12, expiryYear: 2030, name: "a\nb"), nil, "name"),
        (VaultCard(number: "4111111111111111", expiryMonth: 12, expiryYear: 2030, name: nil), "12", "cvv"),
        (VaultCard(number: "4111111111111111", expiryMonth: 12, expiryYear: 2030, name: nil), "12345", "cvv"),
        (VaultCard(number: "4111111111111111", expiryMonth: 12, expiryYear: 2030, name: nil), "12a", "cvv"),
    ]

    @Test("validation names the field", arguments: refusals.indices)
    func validation(_ index: Int) async throws {
        let (card, cvv, field) = Self.refusals[index]
        // The in-memory vault of the flow tests refuses the same things the same way.
        let clock = ManualClock()
        let engine = try await openVault(clock: clock)
        for vault in [engine, InMemoryCardVault(clock: clock)] as [any CardVault] {
            do {
                _ = try await vault.tokenize(card, cvv: cvv, retention: .cardOnFile)
                Issue.record("\(type(of: vault)) took a card it should refuse (\(field))")
            } catch let CardVaultError.invalid(got, reason) {
                #expect(got == field, "\(type(of: vault))")
                #expect(!reason.contains(card.number))
            }
        }
        #expect(try await engine.status().cards == 0)
        await engine.closeRemovingDirectory()
    }

    @Test("the in-memory vault: CVV once, ten minutes, retention and purge by its clock")
    func inMemoryVault() async throws {
        let clock = ManualClock()
        let vault = InMemoryCardVault(clock: clock)
        let card = try await vault.tokenize(testCard(seed: 9), cvv: "123", retention: .until(UnixSeconds(clock.now.seconds.value + 60)))
        let kept = try await vault.tokenize(testCard(seed: 10), cvv: nil, retention: .cardOnFile)
        #expect(try await vault.detokenize(token: card.token, takeCVV: true).cvv == "123")
        #expect(try await vault.detokenize(token: card.token, takeCVV: true).cvv == nil)
        try await vault.attachCVV(token: kept.token, cvv: "999")
        clock.advance(byMillis: HeldCVVs.lifetimeMillis + 1)
        #expect(try await vault.detokenize(token: kept.token, takeCVV: true).cvv == nil)
        #expect(vault.purge(now: clock.now) == 1)
        await #expect(throws: CardVaultError.purged) { try await vault.detokenize(token: card.token, takeCVV: false) }
        await #expect(throws: CardVaultError.notFound) { try await vault.detokenize(token: VaultToken.make(), takeCVV: false) }
        #expect(try await vault.detokenize(token: kept.token, takeCVV: false).card == testCard(seed: 10))
        #expect(vault.count == 1)
    }
}
