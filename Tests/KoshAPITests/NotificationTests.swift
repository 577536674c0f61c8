import AsyncHTTPClient
import Foundation
import KoshApp
import KoshFlows
import KoshCore
import KoshJSON
import KoshRails
import KoshSandbox
import KoshStorage
import KoshTesting
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// A tiny SMTP server on 127.0.0.1, port 0, that records every DATA. It answers `451` to the
/// first `failRecipients` RCPT TO commands (a relay that is briefly unavailable).
final class SMTPTestServer: Sendable {
    struct Mail: Sendable {
        let from: String
        let to: [String]
        let data: String
    }

    final class State: Sendable {
        let mails = Mutex<[Mail]>([])
        let failuresLeft: Mutex<Int>
        init(failRecipients: Int) { failuresLeft = Mutex(failRecipients) }
    }

    let state: State
    let port: Int
    let task: Task<Void, Never>

    var all: [Mail] { state.mails.withLock { $0 } }

    private init(state: State, port: Int, task: Task<Void, Never>) {
        self.state = state
        self.port = port
        self.task = task
    }

    static func start(failRecipients: Int = 0) async throws -> SMTPTestServer {
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let state = State(failRecipients: failRecipients)
        let port = listener.channel.localAddress?.port ?? 0
        let task = Task {
            _ = try? await listener.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask { try? await Self.serve(connection, state: state) }
                    }
                }
            }
        }
        return SMTPTestServer(state: state, port: port, task: task)
    }

    func stop() { task.cancel() }

    static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, state: State) async throws {
        try await connection.executeThenClose { inbound, outbound in
            func reply(_ text: String) async throws { try await outbound.write(ByteBuffer(string: text + "\r\n")) }
            var pending: [UInt8] = []
            var iterator = inbound.makeAsyncIterator()
            func line() async throws -> String? {
                while true {
                    if let lf = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        var bytes = pending[..<lf]
                        if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
                        pending.removeSubrange(...lf)
                        return String(decoding: bytes, as: UTF8.self)
                    }
                    guard let chunk = try await iterator.next() else { return nil }
                    pending += chunk.readableBytesView
                }
            }
            try await reply("220 test.smtp ESMTP ready")
            var from = ""
            var to: [String] = []
            while let command = try await line() {
                let verb = command.prefix(4).uppercased()
                switch verb {
                case "EHLO", "HELO":
                    try await reply("250-test.smtp greets you")
                    try await reply("250 8BITMIME")
                case "MAIL":
                    from = String(command.dropFirst("MAIL FROM:".count))
                    try await reply("250 OK")
                case "RCPT":
                    let fail = state.failuresLeft.withLock { n in
                        if n > 0 { n -= 1; return true }
                        return false
                    }
                    if fail {
                        try await reply("451 4.3.0 mailbox \(command.dropFirst("RCPT TO:".count)) busy, try later")
                    } else {
                        to.append(String(command.dropFirst("RCPT TO:".count)))
                        try await reply("250 OK")
                    }
                case "DATA":
                    try await reply("354 end with .")
                    var data: [String] = []
                    while let text = try await line(), text != "." { data.append(text) }
                    let mail = Mail(from: from, to: to, data: data.joined(separator: "\n"))
                    state.mails.withLock { $0.append(mail) }
                    try await reply("250 queued")
                case "QUIT":
                    try await reply("221 bye")
                    return
                default:
                    try await reply("502 unknown command")
                }
            }
        }
    }
}

extension Kosh {
    func notifier(smtpPort: Int, sandboxURL: String, schedule: [Int64] = [20, 40]) -> NotificationDispatcher {
        var settings = NotificationSettings()
        settings.schedule = WebhookRetrySchedule(retryDelaysMillis: schedule)
        settings.pollIntervalMillis = 5
        // Generous: a full parallel run on two cores can hold a send's task off the CPU for
        // seconds, and a timeout here sends the mail twice (the test counts mails).
        settings.timeoutMillis = 30_000
        settings.smtp = SMTPConfiguration(host: "127.0.0.1", port: smtpPort, from: "payments@kosh.example")
        settings.providerURL = sandboxURL
        return NotificationDispatcher(store: services.notifications, settings: settings, logger: Logger(label: "notifications-test"))
    }

    /// Runs the dispatcher's pass, stepping the clock 10 ms after each, until every
    /// notification is delivered or dead (retries come due as the clock passes them).
    func drainNotifications(_ dispatcher: NotificationDispatcher) async throws -> [NotificationLogEntry] {
        for _ in 0..<500 {
            try await dispatcher.runOnce()
            let log = try await services.notifications.log(merchantID: merchant.merchant.id.rawValue)
            if !log.isEmpty && log.allSatisfy({ $0.status != .pending }) { return log }
            clock.advance(byMillis: 10)
        }
        Issue.record("notifications never finished")
        return try await services.notifications.log(merchantID: merchant.merchant.id.rawValue)
    }
}

/// A signed GET of the sandbox (the providers' message lists).
func sandboxGet(_ baseURL: String, _ path: String) async throws -> JSON {
    let request = RailSigner(secret: SandboxConfiguration.defaultSecret).request(baseURL: baseURL, method: .GET, path: path, body: nil)
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
    let body = try await response.body.collect(upTo: 1 << 20)
    return try JSON.parse(String(buffer: body))
}

func sandboxPut(_ baseURL: String, _ path: String, _ body: String) async throws {
    let request = RailSigner(secret: SandboxConfiguration.defaultSecret).request(baseURL: baseURL, method: .PUT, path: path, body: body)
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
    #expect(response.status.code == 200)
}

@Suite("Notifications", .serialized, .timeLimit(.minutes(3)))
struct NotificationTests {
    @Test("a capture through the API emails the customer and the merchant over SMTP and texts and pushes the customer",
          arguments: TestDatabases.all)
    func captureNotifies(db: String) async throws {
        let smtp = try await SMTPTestServer.start()
        defer { smtp.stop() }
        let (sandbox, sandboxTask) = try await InProcessSandbox.start(seed: 1, secret: SandboxConfiguration.defaultSecret, logger: Logger(label: "sandbox"))
        defer { Task { await sandbox.stop(); _ = try? await sandboxTask.value } }
        try await Kosh.run(db) { kosh in
            try await kosh.services.notifications.setMerchantEmail(merchantID: kosh.merchant.merchant.id.rawValue, email: "ops@merchant.example")
            let paymentID = try await kosh.capturedPayment(amount: 50_000)
            #expect(try await kosh.services.notifications.pending(merchantID: kosh.merchant.merchant.id.rawValue)
                == ["email": 2, "sms": 1, "push": 1, "webhook": 0])
            let log = try await kosh.drainNotifications(kosh.notifier(smtpPort: smtp.port, sandboxURL: sandbox.url))
            #expect(log.map(\.status) == [.delivered, .delivered, .delivered, .delivered])
            #expect(try await kosh.services.notifications.pending(merchantID: kosh.merchant.merchant.id.rawValue) == ["webhook": 0])
            #expect(Set(log.map(\.recipientMasked)) == ["ga***@example.com", "91******89", "op***@merchant.example"])
            #expect(log.allSatisfy { $0.attempts == 1 && $0.lastError == nil })

            let mails = smtp.all
            #expect(mails.count == 2)
            let customer = try #require(mails.first { $0.to == ["<gaurav.kumar@example.com>"] })
            #expect(customer.from == "<payments@kosh.example>")
            #expect(customer.data.contains("Subject: Payment of INR 500.00 successful"))
            #expect(customer.data.contains("Your payment \(paymentID) of INR 500.00"))
            #expect(mails.contains { $0.to == ["<ops@merchant.example>"] && $0.data.contains("Payment \(paymentID) of INR 500.00 was captured.") })

            let sms = try await sandboxGet(sandbox.url, "/sms/v1/messages")
            #expect(sms["count"] == .int(1))
            #expect(sms["items"]?[0]?["to"] == .string("9123456789"))
            #expect(sms["items"]?[0]?["text"] == .string("Your payment \(paymentID) of INR 500.00 to \(kosh.merchant.merchant.id.rawValue) was successful."))
            let push = try await sandboxGet(sandbox.url, "/push/v1/notifications")
            #expect(push["count"] == .int(1))
            #expect(push["items"]?[0]?["title"] == .string("Payment of INR 500.00 successful"))
        }
    }

    @Test("a failing SMTP relay and SMS provider are retried on the schedule; errors in the log are masked",
          arguments: TestDatabases.all)
    func failingProvidersAreRetried(db: String) async throws {
        let smtp = try await SMTPTestServer.start(failRecipients: 1)
        defer { smtp.stop() }
        let (sandbox, sandboxTask) = try await InProcessSandbox.start(seed: 1, secret: SandboxConfiguration.defaultSecret, logger: Logger(label: "sandbox"))
        defer { Task { await sandbox.stop(); _ = try? await sandboxTask.value } }
        try await sandboxPut(sandbox.url, "/sms/v1/outage", #"{"failures": 2}"#)
        try await Kosh.run(db) { kosh in
            _ = try await kosh.capturedPayment(amount: 50_000)
            let log = try await kosh.drainNotifications(kosh.notifier(smtpPort: smtp.port, sandboxURL: sandbox.url, schedule: [20, 40, 60]))
            #expect(log.allSatisfy { $0.status == .delivered })
            let email = try #require(log.first { $0.channel == .email })
            #expect(email.attempts == 2)
            let sms = try #require(log.first { $0.channel == .sms })
            #expect(sms.attempts == 3)
            #expect(smtp.all.count == 1)
            #expect(try await sandboxGet(sandbox.url, "/sms/v1/messages")["count"] == .int(1))
        }
    }

    @Test("a relay that keeps refusing kills the notification after the last retry, with a masked error",
          arguments: TestDatabases.all)
    func deadAfterTheLastRetry(db: String) async throws {
        let smtp = try await SMTPTestServer.start(failRecipients: 100)
        defer { smtp.stop() }
        try await Kosh.run(db) { kosh in
            _ = try await kosh.capturedPayment(amount: 50_000)
            var settings = NotificationSettings()
            settings.schedule = WebhookRetrySchedule(retryDelaysMillis: [10])
            settings.smtp = SMTPConfiguration(host: "127.0.0.1", port: smtp.port, from: "payments@kosh.example")
            let dispatcher = NotificationDispatcher(store: kosh.services.notifications, settings: settings, logger: Logger(label: "test"))
            var email: NotificationLogEntry?
            for _ in 0..<300 {
                try await dispatcher.runOnce()
                email = try await kosh.services.notifications.log(merchantID: kosh.merchant.merchant.id.rawValue).first { $0.channel == .email }
                if email?.status == .dead { break }
                kosh.clock.advance(byMillis: 5)
            }
            let dead = try #require(email)
            #expect(dead.status == .dead)
            #expect(dead.attempts == 2)
            let error = try #require(dead.lastError)
            #expect(error.contains("451"))
            #expect(error.contains("ga***@example.com"))
            #expect(!error.contains("gaurav.kumar"))
            // SMS and push wait: no provider is configured for this dispatcher.
            let log = try await kosh.services.notifications.log(merchantID: kosh.merchant.merchant.id.rawValue)
            #expect(log.filter { $0.channel != .email }.allSatisfy { $0.status == .pending && $0.attempts == 0 })
        }
    }

    @Test("notifications are in the event's transaction; a dead node's claim is taken over after its lease", arguments: TestDatabases.all)
    func leaseTakeover(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let order = try await kosh.createOrder()
            _ = try await kosh.createPayment(order: order)
            #expect(try await kosh.services.notifications.log(merchantID: kosh.merchant.merchant.id.rawValue).isEmpty)
            _ = try await kosh.capturedPayment()
            let store = kosh.services.notifications
            let all: [NotificationChannel] = [.email, .sms, .push]
            let first = try await store.claimDue(owner: "node-a", leaseMillis: 100, limit: 10, channels: all)
            #expect(first.count == 3)
            #expect(try await store.claimDue(owner: "node-b", leaseMillis: 100, limit: 10, channels: all).isEmpty)
            kosh.clock.advance(byMillis: 99)
            #expect(try await store.claimDue(owner: "node-b", leaseMillis: 100, limit: 10, channels: all).isEmpty, "the lease still holds")
            kosh.clock.advance(byMillis: 2)
            let second = try await store.claimDue(owner: "node-b", leaseMillis: 60_000, limit: 10, channels: all)
            #expect(Set(second.map(\.id)) == Set(first.map(\.id)))
            // The node that lost its lease cannot move the notification; the holder can.
            #expect(try await store.record(first[0], owner: "node-a", success: true, error: nil, schedule: .standard) == nil)
            let holder = try #require(second.first { $0.id == first[0].id })
            #expect(try await store.record(holder, owner: "node-b", success: true, error: nil, schedule: .standard) == .delivered)
        }
    }
}
