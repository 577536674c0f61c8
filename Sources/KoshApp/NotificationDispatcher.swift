import AsyncHTTPClient
import Foundation
import KoshCore
import KoshJSON
import KoshRails
import KoshSandbox
import KoshStorage
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

public struct NotificationSettings: Sendable {
    /// Same shape and default as webhooks (`KOSH_NOTIFY_RETRY_SCHEDULE_MS`).
    public var schedule: WebhookRetrySchedule = .standard
    public var pollIntervalMillis: Int64 = 250
    /// One send (SMTP conversation or provider call).
    public var timeoutMillis: Int64 = 10_000
    /// Longer than the timeout: a node that dies loses its claims after this.
    public var leaseMillis: Int64 = 60_000
    public var concurrency = 16
    /// Email: `KOSH_SMTP_URL` and `KOSH_SMTP_FROM`. Nil: email notifications wait in the log.
    public var smtp: SMTPConfiguration?
    /// SMS and push providers' base URL (`KOSH_NOTIFY_PROVIDER_URL`); `kosh serve` uses the
    /// in-process sandbox when it starts one. Nil: SMS and push wait in the log.
    public var providerURL: String?
    /// Signs provider calls like the rails' (`KOSH_NOTIFY_PROVIDER_SECRET`, default the rails secret).
    public var providerSecret: String = SandboxConfiguration.defaultSecret

    public init() {}

    var channels: [NotificationChannel] {
        (smtp == nil ? [] : [.email]) + (providerURL == nil ? [] : [.sms, .push])
    }
}

/// Sends the outbox's notifications: claims due ones with a lease (as webhooks do), sends
/// email over SMTP and SMS / push through the HTTP providers, records the result and schedules
/// retries (`WebhookDeliveryMachine`). At least once. Every log line masks the recipient.
public final class NotificationDispatcher: Service, Sendable {
    let store: NotificationStore
    let settings: NotificationSettings
    let logger: Logger
    let http: HTTPClient
    let smtp: SMTPClient?
    let signer: RailSigner
    let recorder: BatchWriter<NotificationOutcome, WebhookDeliveryMachine.Action?>
    public let owner: String

    public init(store: NotificationStore, settings: NotificationSettings, logger: Logger,
                owner: String = "node-" + UUID().uuidString.prefix(8).lowercased()) {
        self.store = store
        self.settings = settings
        self.logger = logger
        self.owner = owner
        // Providers are the operator's own configuration (not merchants' URLs): the shared
        // client, with a deadline on every call, needs no shutdown.
        self.http = HTTPClient.shared
        self.smtp = settings.smtp.map { smtp in
            var smtp = smtp
            smtp.timeoutMillis = settings.timeoutMillis
            return SMTPClient(configuration: smtp)
        }
        self.signer = RailSigner(secret: settings.providerSecret)
        self.recorder = BatchWriter { [store, owner, schedule = settings.schedule] outcomes in
            try await store.record(outcomes, owner: owner, schedule: schedule)
        }
    }

    public func run() async throws {
        await ClaimLoop.run(concurrency: settings.concurrency, pollIntervalMillis: settings.pollIntervalMillis,
                            logger: logger, what: "notification",
                            claim: { [self] free in try await store.claimDue(owner: owner, leaseMillis: settings.leaseMillis, limit: free,
                                                                              channels: settings.channels) },
                            handle: { [self] notification in await send(notification) })
    }

    /// Claims what is due now and sends it; returns how many were claimed (tests).
    @discardableResult
    public func runOnce() async throws -> Int {
        let claimed = try await store.claimDue(owner: owner, leaseMillis: settings.leaseMillis, limit: settings.concurrency,
                                               channels: settings.channels)
        await withDiscardingTaskGroup { group in
            for notification in claimed { group.addTask { await self.send(notification) } }
        }
        return claimed.count
    }

    struct ProviderError: Error, CustomStringConvertible {
        let description: String
    }

    func send(_ notification: ClaimedNotification) async {
        var failure: String?
        do {
            switch notification.channel {
            case .email:
                guard let smtp else { throw ProviderError(description: "no SMTP server configured") }
                try await smtp.send(to: notification.recipient, subject: notification.subject, body: notification.body,
                                    messageID: notification.id)
            case .sms:
                try await post("/sms/v1/messages", JSON.object([
                    ("to", .string(notification.recipient)), ("text", .string(notification.body)), ("reference", .string(notification.id)),
                ]))
            case .push:
                try await post("/push/v1/notifications", JSON.object([
                    ("user", .string(notification.recipient)), ("title", .string(notification.subject)),
                    ("body", .string(notification.body)), ("reference", .string(notification.id)),
                ]))
            }
        } catch {
            failure = Masking.text(String("\(error)".prefix(512)))
        }
        let metadata: Logger.Metadata = ["notification.id": "\(notification.id)", "notification.channel": "\(notification.channel.rawValue)",
                                         "notification.recipient": "\(notification.recipientMasked)",
                                         "notification.template": "\(notification.template)"]
        do {
            let action = try await recorder.submit(NotificationOutcome(notification: notification, success: failure == nil, error: failure))
            if let failure {
                logger.warning("notification attempt failed", metadata: metadata.merging(["error": "\(failure)", "action": "\(action.map { "\($0)" } ?? "-")"]) { $1 })
            } else {
                logger.debug("notification sent", metadata: metadata)
            }
        } catch {
            logger.error("could not record a notification attempt", metadata: metadata.merging(["error": "\(Masking.text("\(error)"))"]) { $1 })
        }
    }

    func post(_ path: String, _ body: JSON) async throws {
        guard let base = settings.providerURL else { throw ProviderError(description: "no provider configured") }
        let request = signer.request(baseURL: base, method: .POST, path: path, body: body.serialized())
        let response = try await http.execute(request, timeout: .milliseconds(settings.timeoutMillis))
        var snippet = ""
        for try await chunk in response.body {
            snippet += String(decoding: chunk.readableBytesView.prefix(256 - snippet.utf8.count), as: UTF8.self)
            if snippet.utf8.count >= 256 { break }
        }
        guard (200...299).contains(response.status.code) else {
            throw ProviderError(description: "HTTP \(response.status.code) \(snippet)")
        }
    }
}
