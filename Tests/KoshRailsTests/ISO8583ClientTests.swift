import KoshCore
import KoshISO8583
import Synchronization
import Testing
@testable import KoshRails

/// The pool against a fake acquirer on loopback. Real sockets and timers: timeouts and echo
/// intervals are a tenth of a second or so, long enough for a loaded machine, short for a suite.
@Suite("ISO 8583 client", .timeLimit(.minutes(1)))
struct ISO8583ClientTests {
    static func authorization(_ paymentID: String) -> ISO8583Message {
        ISO8583Message(mti: "0100", fields: [3: "000000", 4: "000000050000", 7: "0314184530", 48: TestTLV.encode([("PI", paymentID)])])
    }

    static func paymentID(of message: ISO8583Message) -> String? { message[48].flatMap(TestTLV.decode)?["PI"] }

    @Test func stansRunInTurnWrapAndSkipThoseInFlight() {
        var stans = STANAllocator(first: 999_998)
        #expect(stans.take() == "999998")
        #expect(stans.take() == "999999")
        #expect(stans.take() == "000001")
        stans.release("999998")
        var more = STANAllocator(first: 1)
        #expect(more.take() == "000001")
        #expect(more.take() == "000002")
        more.release("000001")
        more.next = 1
        #expect(more.take() == "000001")
        more.next = 1
        #expect(more.take() == "000003", "000001 and 000002 are in flight")
    }

    @Test func outOfOrderAnswersAreMatchedBySTANOnOneConnection() async throws {
        try await Rig.with(connections: 1) { rig in
            rig.acquirer.play { request, _ in
                guard request.mti == "0100" else { return nil }
                let slow = Self.paymentID(of: request) == "pay_SLOW"
                let answer = FakeAcquirer.answer(to: request, authCode: slow ? "SLOW01" : "FAST01")
                return slow ? .answerAfter(.milliseconds(1_500), answer) : .answer(answer)  // long enough that a loaded machine answers the fast one first
            }
            let order = Mutex<[String]>([])
            async let slow: ISO8583Answer = {
                let answer = try await rig.client.exchange(Self.authorization("pay_SLOW"))
                order.withLock { $0.append("slow") }
                return answer
            }()
            try await eventually { rig.acquirer.received("0100").count == 1 }
            let fast = try await rig.client.exchange(Self.authorization("pay_FAST"))
            order.withLock { $0.append("fast") }
            let slowAnswer = try await slow
            #expect(order.withLock { $0 } == ["fast", "slow"])
            #expect(fast.message[38] == "FAST01" && Self.paymentID(of: fast.message) == "pay_FAST")
            #expect(slowAnswer.message[38] == "SLOW01" && Self.paymentID(of: slowAnswer.message) == "pay_SLOW")
            #expect(fast.stan != slowAnswer.stan)
            #expect(Set(rig.acquirer.received.map(\.connection)) == [1])
            #expect(rig.acquirer.received.first?.message.mti == "0800" && rig.acquirer.received.first?.message[70] == "001")
        }
    }

    @Test func thePoolSpreadsRequestsAndReconnectsAfterADrop() async throws {
        try await Rig.with(connections: 2) { rig in
            rig.acquirer.play { request, _ in
                request.mti == "0100" && Self.paymentID(of: request) == "pay_DROP" ? .drop : nil
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<6 {
                    group.addTask { _ = try await rig.client.exchange(Self.authorization("pay_\(index)")) }
                }
                try await group.waitForAll()
            }
            let used = Dictionary(grouping: rig.acquirer.received("0100"), by: \.connection).mapValues(\.count)
            #expect(used.keys.sorted() == [1, 2], "both connections carry requests: \(used)")
            #expect(rig.acquirer.received("0800").filter { $0.message[70] == "001" }.count == 2, "each connection signed on")

            await #expect(throws: ISO8583ClientError.self) { _ = try await rig.client.exchange(Self.authorization("pay_DROP")) }
            do {
                _ = try await rig.client.exchange(Self.authorization("pay_DROP"))
            } catch let error as ISO8583ClientError {
                #expect(error.kind == .sentNoAnswer && !error.timedOut, "a dropped connection after the write: sent, no answer")
            }
            for index in 0..<4 { _ = try await rig.client.exchange(Self.authorization("pay_after_\(index)")) }
            #expect(rig.acquirer.connectionsAccepted >= 3, "dropped connections are opened again")
            #expect(rig.client.connectionsOpened == rig.acquirer.connectionsAccepted)
        }
    }

    @Test func aRequestWithoutAnswerTimesOutAsSent() async throws {
        try await Rig.with { rig in
            rig.acquirer.play { request, _ in request.mti == "0100" ? .never : nil }
            do {
                _ = try await rig.client.exchange(Self.authorization("pay_NEVER"), timeout: .milliseconds(100))
                Issue.record("answered")
            } catch let error as ISO8583ClientError {
                #expect(error.kind == .sentNoAnswer && error.timedOut)
                #expect(error.stan != nil)
            }
            // The connection stays usable.
            rig.acquirer.play { _, _ in nil }
            _ = try await rig.client.exchange(Self.authorization("pay_NEXT"))
            #expect(rig.acquirer.connectionsAccepted == 1)
        }
    }

    @Test func noAcquirerMeansNotSent() async throws {
        let acquirer = try await FakeAcquirer.start()
        let port = acquirer.port
        await acquirer.stop()
        let client = ISO8583Client(configuration: ISO8583ClientConfiguration(host: "127.0.0.1", port: port, connections: 1,
                                                                             connectTimeout: .milliseconds(500)))
        do {
            _ = try await client.exchange(Self.authorization("pay_DOWN"))
            Issue.record("answered")
        } catch let error as ISO8583ClientError {
            #expect(error.kind == .couldNotSend)
        }
        await client.shutdown()
        await #expect(throws: ISO8583ClientError.self) { _ = try await client.exchange(Self.authorization("pay_LATER")) }
    }

    @Test func echoesKeepAnIdleConnection() async throws {
        try await Rig.with(echoInterval: .milliseconds(100)) { rig in
            _ = try await rig.client.exchange(Self.authorization("pay_FIRST"))
            try await eventually { rig.acquirer.received("0800").filter { $0.message[70] == "301" }.count >= 3 }
            _ = try await rig.client.exchange(Self.authorization("pay_SECOND"))
            #expect(rig.acquirer.connectionsAccepted == 1)
            #expect(Set(rig.acquirer.received.map(\.connection)) == [1])
        }
    }

    @Test func aMissedEchoReplacesTheConnection() async throws {
        try await Rig.with(echoInterval: .milliseconds(100)) { rig in
            rig.acquirer.play { request, connection in
                request.mti == "0800" && request[70] == "301" && connection == 1 ? .never : nil
            }
            _ = try await rig.client.exchange(Self.authorization("pay_FIRST"))
            // Replaced at once, not on the next request: the new connection signs on by itself.
            try await eventually { rig.acquirer.received("0800").contains { $0.connection == 2 && $0.message[70] == "001" } }
            let answer = try await rig.client.exchange(Self.authorization("pay_SECOND"))
            #expect(answer.message[39] == "00")
            #expect(rig.acquirer.received("0100").last?.connection == 2)
            #expect(!rig.logs.containing("echo unanswered").isEmpty)
        }
    }
}
