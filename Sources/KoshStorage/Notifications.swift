import Foundation
import KoshCore

/// A notification a dispatcher holds the lease of.
public struct ClaimedNotification: Sendable {
    public let id: String
    public let eventID: String
    public let channel: NotificationChannel
    public let recipient: String
    public let recipientMasked: String
    public let template: String
    public let subject: String
    public let body: String
    public let attempts: Int
}

/// The notification queue and log over either database. Claims and retries follow the
/// webhook deliveries' rules (lease, `FOR UPDATE SKIP LOCKED`, `WebhookDeliveryMachine`).
/// One send's result, to be recorded (`NotificationStore.record`). `error` is masked.
public struct NotificationOutcome: Sendable {
    public let notification: ClaimedNotification
    public let success: Bool
    public let error: String?

    public init(notification: ClaimedNotification, success: Bool, error: String?) {
        self.notification = notification
        self.success = success
        self.error = error
    }
}

public final class NotificationStore: Sendable {
    let db: any SQLDatabase
    public let clock: any KoshClock

    public init(db: any SQLDatabase, clock: any KoshClock) {
        self.db = db
        self.clock = clock
    }

    /// Queues one message, due at `nowMillis`, in the caller's transaction.
    static func insert(_ conn: any SQLConnection, _ planned: PlannedNotification, eventID: String, merchantID: String,
                       nowMillis: Int64) async throws {
        try await insert(conn, [planned], eventID: eventID, merchantID: merchantID, nowMillis: nowMillis)
    }

    /// Queues an event's messages (at most a handful: one per channel and audience) with one
    /// multi-row INSERT.
    static func insert(_ conn: any SQLConnection, _ planned: [PlannedNotification], eventID: String, merchantID: String,
                       nowMillis: Int64) async throws {
        guard !planned.isEmpty else { return }
        precondition(planned.count <= SQLStoreTransaction.maximumRowsPerInsert)
        let (sql, binds) = SQLRecord.insert(into: "notifications", planned.map { p in
            ["id": .text(Identifiers.make(.notification)), "event_id": .text(eventID), "merchant_id": .text(merchantID),
             "channel": .text(p.channel.rawValue), "audience": .text(p.audience.rawValue), "recipient": .text(p.recipient),
             "recipient_masked": .text(Masking.recipient(p.recipient)), "template": .text(p.template), "subject": .text(p.subject),
             "body": .text(p.body), "status": .text(WebhookDeliveryState.pending.rawValue), "attempts": .int(0),
             "next_attempt_at": .int(nowMillis), "created_at": .int(nowMillis / 1000)]
        })
        try await conn.query(sql, binds)
    }

    /// Where the merchant's own notifications go; nil stops them.
    public func setMerchantEmail(merchantID: String, email: String?) async throws {
        try await db.transaction { conn in
            try await conn.query("UPDATE merchants SET notification_email = ? WHERE id = ?", [SQLValue(email), .text(merchantID)])
        }
    }

    /// The merchant's notification log, oldest first.
    public func log(merchantID: String, limit: Int = 100) async throws -> [NotificationLogEntry] {
        precondition(limit > 0 && limit <= 1_000)
        return try await db.transaction { conn in
            try await conn.query("""
                SELECT * FROM notifications WHERE merchant_id = ? ORDER BY created_at, id\(conn.dialect.byteOrder) LIMIT ?
                """, [.text(merchantID), .int(Int64(limit))]).map(Self.logEntry)
        }
    }

    /// What a merchant's outbox still has to send: pending notifications per channel and
    /// pending webhook deliveries (the load tool's check that dispatch keeps up).
    public func pending(merchantID: String) async throws -> [String: Int] {
        try await db.transaction { conn in
            var counts: [String: Int] = [:]
            for row in try await conn.query("""
                SELECT channel, COUNT(*) AS n FROM notifications WHERE merchant_id = ? AND status = 'pending' GROUP BY channel
                """, [.text(merchantID)]) {
                counts[try row.requireText("channel")] = Int(try row.requireInt("n"))
            }
            let webhooks = try await conn.query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE merchant_id = ? AND status = 'pending'",
                                                [.text(merchantID)])
            counts["webhook"] = Int(try webhooks.first?.requireInt("n") ?? 0)
            return counts
        }
    }

    static func logEntry(_ row: SQLRow) throws -> NotificationLogEntry {
        guard let channel = NotificationChannel(rawValue: try row.requireText("channel")),
              let audience = NotificationAudience(rawValue: try row.requireText("audience")),
              let status = WebhookDeliveryState(rawValue: try row.requireText("status")) else { throw StorageError.corrupt("notification") }
        return NotificationLogEntry(id: try row.requireText("id"), eventID: try row.requireText("event_id"), channel: channel,
                                    audience: audience, recipientMasked: try row.requireText("recipient_masked"),
                                    template: try row.requireText("template"), subject: try row.requireText("subject"), status: status,
                                    attempts: Int(try row.requireInt("attempts")), lastError: row.text("last_error"),
                                    createdAt: try row.requireInt("created_at"), sentAt: row.int("sent_at"))
    }

    /// Takes the lease of up to `limit` due notifications of `channels` for `owner`; a lease
    /// that ran out (its node died) is taken over.
    public func claimDue(owner: String, leaseMillis: Int64, limit: Int, channels: [NotificationChannel]) async throws -> [ClaimedNotification] {
        precondition(limit > 0 && limit <= 1_000)
        guard !channels.isEmpty else { return [] }
        let now = clock.nowMillis()
        let rows: [SQLRow] = try await db.transaction { conn in
            // One query per channel, each an ordered walk of the partial index
            // (channel, next_attempt_at) WHERE status = 'pending' that stops after `limit` rows;
            // the oldest `limit` of them all are leased with one UPDATE.
            var candidates: [(id: String, due: Int64)] = []
            for channel in channels {
                candidates += try await conn.query("""
                    SELECT id, next_attempt_at FROM notifications
                    WHERE status = 'pending' AND channel = ? AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)
                    ORDER BY next_attempt_at LIMIT ?\(conn.dialect.forUpdateSkipLocked)
                    """, [.text(channel.rawValue), .int(now), .int(now), .int(Int64(limit))]).map {
                    (id: try $0.requireText("id"), due: $0.int("next_attempt_at") ?? 0)
                }
            }
            let chosen = candidates.sorted { $0.due < $1.due }.prefix(limit).map(\.id)
            var leased: [SQLRow] = []
            for chunk in chosen.chunks(of: SQLStoreTransaction.maximumRowsPerInsert) {
                leased += try await conn.query("""
                    UPDATE notifications SET lease_owner = ?, lease_until = ?
                    WHERE id IN \(SQLStoreTransaction.placeholders(rows: 1, columns: chunk.count)) RETURNING *
                    """, [.text(owner), .int(now + leaseMillis)] + chunk.map { .text($0) })
            }
            return leased.sorted { ($0.int("next_attempt_at") ?? 0) < ($1.int("next_attempt_at") ?? 0) }
        }
        return try rows.map { row in
            guard let channel = NotificationChannel(rawValue: try row.requireText("channel")) else { throw StorageError.corrupt("notification") }
            return ClaimedNotification(id: try row.requireText("id"), eventID: try row.requireText("event_id"), channel: channel,
                                       recipient: try row.requireText("recipient"), recipientMasked: try row.requireText("recipient_masked"),
                                       template: try row.requireText("template"), subject: try row.requireText("subject"),
                                       body: try row.requireText("body"), attempts: Int(try row.requireInt("attempts")))
        }
    }

    /// Moves the notification on after one attempt (sent, retry later, or dead). Only the
    /// lease holder moves it. `error` must already be masked.
    @discardableResult
    public func record(_ notification: ClaimedNotification, owner: String, success: Bool, error: String?,
                       schedule: WebhookRetrySchedule) async throws -> WebhookDeliveryMachine.Action? {
        try await record([NotificationOutcome(notification: notification, success: success, error: error)], owner: owner,
                         schedule: schedule)[0]
    }

    /// Records many attempts in one transaction (the dispatcher batches them); one action per
    /// outcome, nil where this owner no longer holds the lease.
    public func record(_ outcomes: [NotificationOutcome], owner: String,
                       schedule: WebhookRetrySchedule) async throws -> [WebhookDeliveryMachine.Action?] {
        let now = clock.nowMillis()
        // A successful send moves any pending message the same way (the machine says so once):
        // the successes of a batch are recorded by one UPDATE; failures, whose next step
        // depends on each message's attempts, one by one.
        var delivered = WebhookDeliveryMachine(state: .pending, attempts: 0)
        guard case .delivered = try delivered.attempted(success: true, nowMillis: now, schedule: schedule) else {
            preconditionFailure("a successful attempt must deliver")
        }
        return try await db.transaction { conn in
            var actions = [WebhookDeliveryMachine.Action?](repeating: nil, count: outcomes.count)
            let successes = outcomes.indices.filter { outcomes[$0].success }
            for chunk in successes.chunks(of: SQLStoreTransaction.maximumRowsPerInsert) {
                let ids = chunk.map { outcomes[$0].notification.id }
                let updated = Set(try await conn.query("""
                    UPDATE notifications SET status = ?, attempts = attempts + 1, next_attempt_at = NULL, lease_owner = NULL,
                        lease_until = NULL, last_error = NULL, sent_at = ?
                    WHERE status = 'pending' AND lease_owner = ? AND id IN \(SQLStoreTransaction.placeholders(rows: 1, columns: ids.count))
                    RETURNING id
                    """, [.text(delivered.state.rawValue), .int(now / 1000), .text(owner)] + ids.map { .text($0) }).compactMap { $0.text("id") })
                for index in chunk where updated.contains(outcomes[index].notification.id) { actions[index] = .delivered }
            }
            for index in outcomes.indices where !outcomes[index].success {
                actions[index] = try await Self.record(conn, outcomes[index], owner: owner, schedule: schedule, now: now)
            }
            return actions
        }
    }

    static func record(_ conn: any SQLConnection, _ outcome: NotificationOutcome, owner: String, schedule: WebhookRetrySchedule,
                       now: Int64) async throws -> WebhookDeliveryMachine.Action? {
        let id = outcome.notification.id
        guard let row = try await conn.query("SELECT status, attempts, lease_owner FROM notifications WHERE id = ?\(conn.dialect.forUpdate)",
                                             [.text(id)]).first else { throw StorageError.corrupt("notification vanished") }
        guard row.text("lease_owner") == owner, row.text("status") == WebhookDeliveryState.pending.rawValue else { return nil }
        var machine = WebhookDeliveryMachine(state: .pending, attempts: Int(try row.requireInt("attempts")))
        let action = try machine.attempted(success: outcome.success, nowMillis: now, schedule: schedule)
        let next: Int64? = if case .retry(let at) = action { at } else { nil }
        let recorded: SQLRecord = [
            "status": .text(machine.state.rawValue), "attempts": .int(Int64(machine.attempts)), "next_attempt_at": SQLValue(next),
            "lease_owner": .null, "lease_until": .null, "last_error": SQLValue(outcome.error),
            "sent_at": SQLValue(outcome.success ? now / 1000 : nil),
        ]
        try await conn.query(recorded.updateSQL("notifications") + " WHERE id = ?", recorded.binds + [.text(id)])
        return action
    }
}
