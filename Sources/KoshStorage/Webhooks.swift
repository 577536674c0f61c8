import Crypto
import Foundation
import KoshCore

// MARK: - The outbox, inside the state change's transaction

extension SQLStoreTransaction {
    /// The merchant's active endpoints and notification email, read with one query, once per
    /// transaction: a transaction that publishes two events (a capture: payment.captured and
    /// order.paid) reads them once.
    public func outboxRecipients(merchantID: String) async throws -> OutboxRecipients {
        if let known = outboxRecipientsByMerchant[merchantID] { return known }
        let rows = try await conn.query("""
            SELECT m.notification_email, e.id, e.events FROM merchants m
            LEFT JOIN webhook_endpoints e ON e.merchant_id = m.id AND e.active = 1 AND e.deleted_at IS NULL
            WHERE m.id = ? ORDER BY e.created_at, e.id
            """, [.text(merchantID)])
        let endpoints = rows.compactMap { row in
            row.text("id").map { id in
                OutboxRecipients.Endpoint(id: id, events: Set((row.text("events") ?? "").split(separator: ",").compactMap {
                    WebhookEventName(rawValue: String($0))
                }))
            }
        }
        let recipients = OutboxRecipients(endpoints: endpoints, merchantEmail: rows.first?.text("notification_email"))
        outboxRecipientsByMerchant[merchantID] = recipients
        return recipients
    }

    /// Writes a public event, its deliveries (pending, due now) and its notifications as
    /// planned, in this transaction: an event is never committed without them.
    public func writeOutbox(_ plan: OutboxPlan) async throws {
        let event = plan.event
        let record: SQLRecord = ["id": .text(event.id), "merchant_id": .text(event.merchantID), "event": .text(event.name.rawValue),
                                 "payload": .text(event.body), "created_at": .int(event.createdAt)]
        try await conn.query(record.insertSQL(into: "events"), record.binds)
        let nowMillis = event.createdAt * 1000
        for endpointID in plan.deliveries {
            let delivery: SQLRecord = [
                "id": .text(Identifiers.make(.webhookDelivery)), "event_id": .text(event.id), "endpoint_id": .text(endpointID),
                "merchant_id": .text(event.merchantID), "event": .text(event.name.rawValue),
                "status": .text(WebhookDeliveryState.pending.rawValue), "attempts": .int(0), "next_attempt_at": .int(nowMillis),
                "created_at": .int(event.createdAt),
            ]
            try await conn.query(delivery.insertSQL(into: "webhook_deliveries"), delivery.binds)
        }
        try await NotificationStore.insert(conn, plan.notifications, eventID: event.id, merchantID: event.merchantID, nowMillis: nowMillis)
    }
}

/// A delivery a dispatcher holds the lease of, with what it needs to send it.
public struct ClaimedDelivery: Sendable {
    public let id: String
    public let eventID: String
    public let endpointID: String
    public let url: String
    public let secret: String
    public let body: String
    public let machine: WebhookDeliveryMachine
}

/// Webhook endpoints, events and deliveries over either database; also the dispatcher's
/// claim and record operations.
/// One POST's result, to be recorded (`WebhookStore.record`).
public struct WebhookOutcome: Sendable {
    public let delivery: ClaimedDelivery
    public let attempt: WebhookAttempt
    public let success: Bool

    public init(delivery: ClaimedDelivery, attempt: WebhookAttempt, success: Bool) {
        self.delivery = delivery
        self.attempt = attempt
        self.success = success
    }
}

public final class WebhookStore: WebhookRegistry {
    let db: any SQLDatabase
    let masterKey: MasterKey
    public let clock: any KoshClock

    public init(db: any SQLDatabase, masterKey: MasterKey, clock: any KoshClock) {
        self.db = db
        self.masterKey = masterKey
        self.clock = clock
    }

    var sealingKey: SymmetricKey { masterKey.derive("kosh webhook secret sealing v1") }

    func seal(_ secret: String, endpointID: String) throws -> String {
        try AES.GCM.seal(Data(secret.utf8), using: sealingKey, authenticating: Data(endpointID.utf8)).combined!.base64EncodedString()
    }

    func unseal(_ sealed: String, endpointID: String) throws -> String {
        guard let data = Data(base64Encoded: sealed) else { throw StorageError.corrupt("webhook secret") }
        let box = try AES.GCM.SealedBox(combined: data)
        return String(decoding: try AES.GCM.open(box, using: sealingKey, authenticating: Data(endpointID.utf8)), as: UTF8.self)
    }

    static func endpoint(_ row: SQLRow) throws -> WebhookEndpoint {
        WebhookEndpoint(id: try row.requireText("id"), merchantID: try row.requireText("merchant_id"), url: try row.requireText("url"),
                        events: (row.text("events") ?? "").split(separator: ",").compactMap { WebhookEventName(rawValue: String($0)) },
                        active: row.int("active") == 1, failing: row.int("failing") == 1, createdAt: try row.requireInt("created_at"))
    }

    // MARK: Registry

    public func createEndpoint(merchantID: String, url: String, events: [WebhookEventName], secret: String) async throws -> WebhookEndpoint {
        let now = clock.nowMillis()
        let endpoint = WebhookEndpoint(id: Identifiers.make(.webhook, millis: now), merchantID: merchantID, url: url, events: events,
                                       active: true, failing: false, createdAt: now / 1000)
        let sealed = try seal(secret, endpointID: endpoint.id)
        _ = try await db.transaction { conn in
            let record: SQLRecord = [
                "id": .text(endpoint.id), "merchant_id": .text(merchantID), "url": .text(url), "secret_sealed": .text(sealed),
                "events": .text(events.map(\.rawValue).joined(separator: ",")), "active": .int(1), "failing": .int(0),
                "created_at": .int(endpoint.createdAt),
            ]
            try await conn.query(record.insertSQL(into: "webhook_endpoints"), record.binds)
        }
        return endpoint
    }

    public func endpoints(merchantID: String, page: Page) async throws -> [WebhookEndpoint] {
        var sql = "SELECT * FROM webhook_endpoints WHERE merchant_id = ? AND deleted_at IS NULL"
        var binds: [SQLValue] = [.text(merchantID)]
        if let from = page.from { sql += " AND created_at >= ?"; binds.append(.int(from)) }
        if let to = page.to { sql += " AND created_at <= ?"; binds.append(.int(to)) }
        sql += " ORDER BY created_at DESC, id\(db.dialect.byteOrder) DESC LIMIT ? OFFSET ?"
        binds += [.int(Int64(page.count)), .int(Int64(page.skip))]
        return try await db.transaction { conn in try await conn.query(sql, binds).map(Self.endpoint) }
    }

    public func endpoint(id: String, merchantID: String) async throws -> WebhookEndpoint? {
        try await db.transaction { conn in
            try await conn.query("SELECT * FROM webhook_endpoints WHERE id = ? AND merchant_id = ? AND deleted_at IS NULL",
                                 [.text(id), .text(merchantID)]).first.map(Self.endpoint)
        }
    }

    public func updateEndpoint(_ endpoint: WebhookEndpoint, secret: String?) async throws {
        let sealed = try secret.map { try seal($0, endpointID: endpoint.id) }
        try await db.transaction { conn in
            try await conn.query("""
                UPDATE webhook_endpoints SET url = ?, events = ?, active = ?, failing = 0 WHERE id = ? AND merchant_id = ? AND deleted_at IS NULL
                """, [.text(endpoint.url), .text(endpoint.events.map(\.rawValue).joined(separator: ",")), .int(endpoint.active ? 1 : 0),
                      .text(endpoint.id), .text(endpoint.merchantID)])
            if let sealed {
                try await conn.query("UPDATE webhook_endpoints SET secret_sealed = ? WHERE id = ?", [.text(sealed), .text(endpoint.id)])
            }
        }
    }

    public func deleteEndpoint(id: String, merchantID: String) async throws -> Bool {
        let now = clock.nowMillis()
        return try await db.transaction { conn in
            let rows = try await conn.query("SELECT id FROM webhook_endpoints WHERE id = ? AND merchant_id = ? AND deleted_at IS NULL\(conn.dialect.forUpdate)",
                                            [.text(id), .text(merchantID)])
            guard !rows.isEmpty else { return false }
            try await conn.query("UPDATE webhook_endpoints SET deleted_at = ?, active = 0 WHERE id = ?", [.int(now / 1000), .text(id)])
            try await conn.query("""
                UPDATE webhook_deliveries SET status = 'dead', next_attempt_at = NULL, last_error = 'endpoint deleted'
                WHERE endpoint_id = ? AND status = 'pending'
                """, [.text(id)])
            return true
        }
    }

    static func delivery(_ row: SQLRow, attempts: [WebhookAttempt]) throws -> WebhookDelivery {
        guard let state = WebhookDeliveryState(rawValue: try row.requireText("status")) else { throw StorageError.corrupt("webhook delivery") }
        return WebhookDelivery(id: try row.requireText("id"), eventID: try row.requireText("event_id"), endpointID: try row.requireText("endpoint_id"),
                               event: try row.requireText("event"),
                               machine: WebhookDeliveryMachine(state: state, attempts: Int(try row.requireInt("attempts"))),
                               nextAttemptAt: row.int("next_attempt_at"), lastStatusCode: row.int("last_status_code"),
                               lastError: row.text("last_error"), createdAt: try row.requireInt("created_at"), attemptLog: attempts)
    }

    static func attempts(_ conn: any SQLConnection, deliveryID: String) async throws -> [WebhookAttempt] {
        try await conn.query("SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY seq", [.text(deliveryID)]).map { row in
            WebhookAttempt(at: try row.requireInt("at"), statusCode: row.int("status_code"), latencyMillis: try row.requireInt("latency_ms"),
                           response: row.text("response"), error: row.text("error"))
        }
    }

    public func deliveries(endpointID: String, merchantID: String, page: Page) async throws -> [WebhookDelivery] {
        let (sql, binds) = SQLStoreTransaction.pageQuery("webhook_deliveries", dialect: db.dialect, merchantID: merchantID,
                                                         extra: ("endpoint_id", .text(endpointID)), page: page)
        return try await db.transaction { conn in
            var out: [WebhookDelivery] = []
            for row in try await conn.query(sql, binds) {
                out.append(try Self.delivery(row, attempts: try await Self.attempts(conn, deliveryID: try row.requireText("id"))))
            }
            return out
        }
    }

    public func redeliver(deliveryID: String, merchantID: String) async throws -> WebhookDelivery? {
        let now = clock.nowMillis()
        return try await db.transaction { conn in
            guard let row = try await conn.query("SELECT * FROM webhook_deliveries WHERE id = ? AND merchant_id = ?\(conn.dialect.forUpdate)",
                                                 [.text(deliveryID), .text(merchantID)]).first else { return nil }
            var delivery = try Self.delivery(row, attempts: [])
            delivery.machine.redeliver()
            try await conn.query("""
                UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?
                """, [.text(delivery.machine.state.rawValue), .int(Int64(delivery.machine.attempts)), .int(now), .text(deliveryID)])
            delivery.nextAttemptAt = now
            delivery.attemptLog = try await Self.attempts(conn, deliveryID: deliveryID)
            return delivery
        }
    }

    static func event(_ row: SQLRow) throws -> OutboxEvent {
        guard let name = WebhookEventName(rawValue: try row.requireText("event")) else { throw StorageError.corrupt("event") }
        return OutboxEvent(id: try row.requireText("id"), merchantID: try row.requireText("merchant_id"), name: name,
                           body: try row.requireText("payload"), createdAt: try row.requireInt("created_at"))
    }

    public func events(merchantID: String, page: Page) async throws -> [OutboxEvent] {
        let (sql, binds) = SQLStoreTransaction.pageQuery("events", dialect: db.dialect, merchantID: merchantID, extra: nil, page: page)
        return try await db.transaction { conn in try await conn.query(sql, binds).map(Self.event) }
    }

    public func event(id: String, merchantID: String) async throws -> OutboxEvent? {
        try await db.transaction { conn in
            try await conn.query("SELECT * FROM events WHERE id = ? AND merchant_id = ?", [.text(id), .text(merchantID)]).first.map(Self.event)
        }
    }

    public func notifications(merchantID: String, page: Page) async throws -> [NotificationLogEntry] {
        let (sql, binds) = SQLStoreTransaction.pageQuery("notifications", dialect: db.dialect, merchantID: merchantID, extra: nil, page: page)
        return try await db.transaction { conn in try await conn.query(sql, binds).map(NotificationStore.logEntry) }
    }

    /// Deletes events created before `createdBefore` (seconds) whose webhook deliveries are all
    /// finished, with those deliveries, their attempts and the event's notifications (one still
    /// unsent after the retention — no SMTP server or provider configured — is given up); in
    /// batches of `batch`, each its own transaction. Returns how many events. An event with a
    /// delivery still pending (retrying, or waiting for a paused endpoint) is kept.
    public func purgeEvents(createdBefore: Int64, batch: Int = 500) async throws -> Int {
        precondition(batch > 0 && batch <= 1_000)
        var total = 0
        while true {
            let purged: Int = try await db.transaction { conn in
                let ids = try await conn.query("""
                    SELECT id FROM events ev WHERE created_at < ?
                        AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = ev.id AND d.status = 'pending')
                    ORDER BY created_at LIMIT ?
                    """, [.int(createdBefore), .int(Int64(batch))]).compactMap { $0.text("id") }
                guard !ids.isEmpty else { return 0 }
                let list = ids.map { _ in "?" }.joined(separator: ", ")
                let binds = ids.map(SQLValue.text)
                try await conn.query("""
                    DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE event_id IN (\(list)))
                    """, binds)
                try await conn.query("DELETE FROM webhook_deliveries WHERE event_id IN (\(list))", binds)
                try await conn.query("DELETE FROM notifications WHERE event_id IN (\(list))", binds)
                try await conn.query("DELETE FROM events WHERE id IN (\(list))", binds)
                return ids.count
            }
            total += purged
            if purged < batch { return total }
        }
    }

    // MARK: Dispatcher

    /// Takes the lease of up to `limit` due deliveries for `owner`. PostgreSQL: rows another
    /// node is claiming right now are skipped (`FOR UPDATE SKIP LOCKED`); a lease that ran out
    /// (its node died) is taken over. Deliveries to a paused (inactive) endpoint wait for it.
    public func claimDue(owner: String, leaseMillis: Int64, limit: Int) async throws -> [ClaimedDelivery] {
        precondition(limit > 0 && limit <= 1_000)
        let now = clock.nowMillis()
        let rows: [SQLRow] = try await db.transaction { conn in
            let due = try await conn.query("""
                SELECT id FROM webhook_deliveries
                WHERE status = 'pending' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)
                    AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = webhook_deliveries.endpoint_id AND e.active = 1)
                ORDER BY next_attempt_at LIMIT ?\(conn.dialect.forUpdateSkipLocked)
                """, [.int(now), .int(now), .int(Int64(limit))])
            var claimed: [SQLRow] = []
            for row in due {
                let id = try row.requireText("id")
                try await conn.query("UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?",
                                     [.text(owner), .int(now + leaseMillis), .text(id)])
                if let full = try await conn.query("""
                    SELECT d.id, d.event_id, d.endpoint_id, d.status, d.attempts, e.url, e.secret_sealed, ev.payload
                    FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN events ev ON ev.id = d.event_id
                    WHERE d.id = ?
                    """, [.text(id)]).first {
                    claimed.append(full)
                }
            }
            return claimed
        }
        return try rows.map { row in
            let endpointID = try row.requireText("endpoint_id")
            return ClaimedDelivery(id: try row.requireText("id"), eventID: try row.requireText("event_id"), endpointID: endpointID,
                                   url: try row.requireText("url"), secret: try unseal(try row.requireText("secret_sealed"), endpointID: endpointID),
                                   body: try row.requireText("payload"),
                                   machine: WebhookDeliveryMachine(state: .pending, attempts: Int(try row.requireInt("attempts"))))
        }
    }

    /// Logs one attempt and moves the delivery on (delivered, retry later, or dead with its
    /// endpoint flagged). Only the lease holder moves it: a node whose lease ran out only logs.
    public func record(_ delivery: ClaimedDelivery, owner: String, attempt: WebhookAttempt, success: Bool,
                       schedule: WebhookRetrySchedule) async throws {
        try await record([WebhookOutcome(delivery: delivery, attempt: attempt, success: success)], owner: owner, schedule: schedule)
    }

    /// Records many attempts in one transaction (the dispatcher batches them).
    public func record(_ outcomes: [WebhookOutcome], owner: String, schedule: WebhookRetrySchedule) async throws {
        let now = clock.nowMillis()
        try await db.transaction { conn in
            // In id order: two nodes' batches lock rows in the same order (PostgreSQL).
            for outcome in outcomes.sorted(by: { $0.delivery.id < $1.delivery.id }) {
                try await Self.record(conn, outcome.delivery, owner: owner, attempt: outcome.attempt, success: outcome.success,
                                      schedule: schedule, now: now)
            }
        }
    }

    static func record(_ conn: any SQLConnection, _ delivery: ClaimedDelivery, owner: String, attempt: WebhookAttempt, success: Bool,
                       schedule: WebhookRetrySchedule, now: Int64) async throws {
        guard let row = try await conn.query("SELECT * FROM webhook_deliveries WHERE id = ?\(conn.dialect.forUpdate)",
                                             [.text(delivery.id)]).first else { throw StorageError.corrupt("webhook delivery vanished") }
        let seq = (try await conn.query("SELECT COALESCE(MAX(seq), 0) AS n FROM webhook_attempts WHERE delivery_id = ?",
                                        [.text(delivery.id)]).first?.int("n") ?? 0) + 1
        let attemptRecord: SQLRecord = [
            "delivery_id": .text(delivery.id), "seq": .int(seq), "at": .int(attempt.at), "status_code": SQLValue(attempt.statusCode),
            "latency_ms": .int(attempt.latencyMillis), "response": SQLValue(attempt.response), "error": SQLValue(attempt.error),
            "lease_owner": .text(owner),
        ]
        try await conn.query(attemptRecord.insertSQL(into: "webhook_attempts"), attemptRecord.binds)
        guard row.text("lease_owner") == owner, row.text("status") == WebhookDeliveryState.pending.rawValue else { return }
        var machine = WebhookDeliveryMachine(state: .pending, attempts: Int(try row.requireInt("attempts")))
        let action = try machine.attempted(success: success, nowMillis: now, schedule: schedule)
        let next: Int64? = if case .retry(let at) = action { at } else { nil }
        let recorded: SQLRecord = [
            "status": .text(machine.state.rawValue), "attempts": .int(Int64(machine.attempts)), "next_attempt_at": SQLValue(next),
            "lease_owner": .null, "lease_until": .null, "last_status_code": SQLValue(attempt.statusCode),
            "last_error": SQLValue(attempt.error),
        ]
        try await conn.query(recorded.updateSQL("webhook_deliveries") + " WHERE id = ?", recorded.binds + [.text(delivery.id)])
        switch action {
        case .dead:
            // The merchant hears of it once, when the endpoint starts failing (not for every dead
            // delivery): only the transaction that flips the flag (the row lock orders two at once) tells.
            let flipped = try await conn.query("UPDATE webhook_endpoints SET failing = 1 WHERE id = ? AND failing = 0 RETURNING id",
                                               [.text(delivery.endpointID)]).count == 1
            let endpoint = flipped ? try await conn.query("""
                SELECT e.url, m.notification_email FROM webhook_endpoints e JOIN merchants m ON m.id = e.merchant_id WHERE e.id = ?
                """, [.text(delivery.endpointID)]).first : nil
            if let endpoint, let email = endpoint.text("notification_email"), !email.isEmpty {
                let lastError = attempt.error ?? attempt.statusCode.map { "HTTP \($0)" } ?? "no answer"
                let planned = NotificationTemplates.webhookFailing(
                    webhookID: delivery.endpointID, url: endpoint.text("url") ?? "", eventID: delivery.eventID,
                    event: row.text("event") ?? "", attempts: machine.attempts, lastError: lastError, merchantEmail: email)
                try await NotificationStore.insert(conn, planned, eventID: delivery.eventID,
                                                   merchantID: try row.requireText("merchant_id"), nowMillis: now)
            }
        case .delivered:
            try await conn.query("UPDATE webhook_endpoints SET failing = 0 WHERE id = ? AND failing = 1", [.text(delivery.endpointID)])
        case .retry:
            break
        }
    }
}
