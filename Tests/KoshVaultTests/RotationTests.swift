import Foundation
import KoshCore
import KoshJSON
import KoshTesting
import Synchronization
import Testing
@testable import KoshVault

@Suite("Vault key rotation", .timeLimit(.minutes(3)))
struct RotationTests {
    /// The keyring file's master keys: version → has key material.
    func keyringVersions(_ directory: String) throws -> [Int: Bool] {
        let file = try VaultKeys.readFile(VaultKeys.keyringPath(directory))
        return Dictionary(uniqueKeysWithValues: file.masterKeys.map { ($0.version, $0.key != nil) })
    }

    @Test("rotate while a client keeps tokenising and detokenising: every card still opens, nothing stays under the old version")
    func rotateUnderLoad() async throws {
        let clock = ManualClock()
        let directory = try temporaryVaultDirectory()
        let vault = try await openVault(clock: clock, directory: directory)
        try await withServer(vault, clock: clock) { client, _ in
            // Five days of cards: five data keys to re-wrap.
            var cards: [String: VaultCard] = [:]
            for day in 0..<5 {
                for n in 0..<4 {
                    let card = testCard(seed: 100 + day * 10 + n)
                    cards[try await client.tokenize(card, cvv: nil, retention: .cardOnFile).token] = card
                }
                clock.advance(bySeconds: 86_400)
            }
            #expect(try await vault.status().dataKeysByMasterVersion == [1: 5])
            vault.forgetDataKeys()

            let minted = Locked<[String: VaultCard]>([:])
            let failures = Locked<[String]>([])
            let existing = cards
            let rotation = try await withThrowingTaskGroup(of: VaultRotation?.self) { group in
                for worker in 0..<3 {
                    group.addTask {
                        for n in 0..<25 {
                            do {
                                let card = testCard(seed: 1_000 + worker * 100 + n)
                                let token = try await client.tokenize(card, cvv: "123", retention: .cardOnFile).token
                                minted.withLock { $0[token] = card }
                                let (opened, cvv) = try await client.detokenize(token: token, takeCVV: true)
                                if opened != card || cvv != "123" { failures.withLock { $0.append("mismatch \(token)") } }
                                let old = existing.randomElement()!
                                if try await client.detokenize(token: old.key, takeCVV: false).card != old.value {
                                    failures.withLock { $0.append("old mismatch \(old.key)") }
                                }
                            } catch {
                                failures.withLock { $0.append("\(error)") }
                            }
                        }
                        return nil
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(20))
                    return try await vault.rotate()
                }
                var rotation: VaultRotation?
                for try await result in group { if let result { rotation = result } }
                return rotation
            }
            #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
            let done = try #require(rotation)
            #expect(done.masterKeyVersion == 2 && done.retiredVersions == [1])
            #expect(done.rewrapped >= 5)

            let status = try await vault.status()
            #expect(status.masterKeyVersion == 2)
            #expect(status.dataKeysByMasterVersion.keys.sorted() == [2], "no data key wrapped under the old version")
            #expect(try keyringVersions(directory) == [1: false, 2: true], "the old key material is erased")
            #expect(try await client.health() == 2)

            // Every card opens, unwrapping afresh under the new version.
            vault.forgetDataKeys()
            for (token, card) in cards.merging(minted.withLock { $0 }, uniquingKeysWith: { a, _ in a }) {
                #expect(try await client.detokenize(token: token, takeCVV: false).card == card)
            }
        }
        await vault.closeRemovingDirectory()
    }

    @Test("a server picks up a rotation another process made, without a restart")
    func rotationByAnotherProcess() async throws {
        let clock = ManualClock()
        let directory = try temporaryVaultDirectory()
        let serving = try await openVault(clock: clock, directory: directory)
        try await withServer(serving, clock: clock) { client, _ in
            let before = try await client.tokenize(testCard(seed: 200), cvv: nil, retention: .cardOnFile)

            // `kosh vault rotate` in another process: its own engine on the same directory.
            let rotator = try await openVault(clock: clock, directory: directory)
            let rotation = try await rotator.rotate()
            #expect(rotation.masterKeyVersion == 2 && rotation.rewrapped == 1 && rotation.retiredVersions == [1])
            await rotator.close()

            // The serving engine never saw version 2: reads and writes find it in the keyring file.
            serving.forgetDataKeys()
            #expect(try await client.detokenize(token: before.token, takeCVV: false).card == testCard(seed: 200))
            clock.advance(bySeconds: 86_400)
            let after = try await client.tokenize(testCard(seed: 201), cvv: nil, retention: .cardOnFile)
            #expect(try await client.detokenize(token: after.token, takeCVV: false).card == testCard(seed: 201))
            #expect(try await client.health() == 2)
            let status = try await serving.status()
            #expect(status.dataKeysByMasterVersion == [2: 2] && status.keyringVersions == [2] && status.retiredVersions == [1])

            // A second rotation, then a fresh engine (a restart) reads everything too.
            _ = try await serving.rotate()
            let restarted = try await openVault(clock: clock, directory: directory)
            #expect(try await restarted.detokenize(token: before.token, takeCVV: false).card == testCard(seed: 200))
            #expect(try await restarted.status().dataKeysByMasterVersion == [3: 2])
            await restarted.close()
        }
        await serving.closeRemovingDirectory()
    }

    @Test("master keys from KOSH_VAULT_MASTER_KEYS: the file holds none; rotating re-wraps under the highest version given")
    func environmentMasterKeys() async throws {
        let clock = ManualClock()
        let directory = try temporaryVaultDirectory()
        let one = Data(repeating: 1, count: 32).base64EncodedString()
        let two = Data(repeating: 2, count: 32).base64EncodedString()
        var vault = try await VaultEngine.open(directory: directory, environment: ["KOSH_VAULT_MASTER_KEYS": "1:\(one)"], clock: clock,
                                               logger: quietLogger)
        let card = try await vault.tokenize(testCard(seed: 300), cvv: nil, retention: .cardOnFile)
        #expect(try keyringVersions(directory).isEmpty)
        let text = try String(contentsOfFile: VaultKeys.keyringPath(directory), encoding: .utf8)
        #expect(!text.contains(one))
        await vault.close()

        // Without the version vault.db needs, the vault refuses to start.
        await #expect(throws: VaultSetupError.self) {
            _ = try await VaultEngine.open(directory: directory, environment: ["KOSH_VAULT_MASTER_KEYS": "2:\(two)"], clock: clock, logger: quietLogger)
        }
        await #expect(throws: VaultSetupError.self) {
            _ = try await VaultEngine.open(directory: directory, environment: ["KOSH_VAULT_MASTER_KEYS": "1:short"], clock: clock, logger: quietLogger)
        }

        vault = try await VaultEngine.open(directory: directory, environment: ["KOSH_VAULT_MASTER_KEYS": "1:\(one),2:\(two)"], clock: clock,
                                           logger: quietLogger)
        let rotation = try await vault.rotate()
        #expect(rotation.masterKeyVersion == 2 && rotation.rewrapped == 1 && rotation.retiredVersions == [1])
        await vault.close()
        vault = try await VaultEngine.open(directory: directory, environment: ["KOSH_VAULT_MASTER_KEYS": "2:\(two)"], clock: clock, logger: quietLogger)
        #expect(try await vault.detokenize(token: card.token, takeCVV: false).card == testCard(seed: 300))
        await vault.closeRemovingDirectory()
    }

    @Test("the channel key: from the keyring file, or KOSH_VAULT_CHANNEL_KEY")
    func channelKey() async throws {
        let directory = try temporaryVaultDirectory()
        let vault = try await openVault(directory: directory)
        #expect(try VaultChannelKey.load(directory: directory, environment: [:]).base64 == vault.channelKey.base64)
        let other = Data(repeating: 5, count: 32).base64EncodedString()
        #expect(try VaultChannelKey.load(directory: directory, environment: ["KOSH_VAULT_CHANNEL_KEY": other]).base64 == other)
        await vault.closeRemovingDirectory()
    }
}
