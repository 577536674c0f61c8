import KoshCore

/// One schema and one list of migrations for both databases. Types are kept to BIGINT and
/// TEXT, which mean the same in both; the few dialect differences are spelled out inline.
public enum Migrations {
    struct Migration: Sendable {
        let version: Int64
        let name: String
        let statements: @Sendable (SQLDialect) -> [String]
    }

    static let all: [Migration] = [
        Migration(version: 1, name: "foundation") { dialect in
            var statements = [
                """
                CREATE TABLE settings (
                    key TEXT PRIMARY KEY,
                    value TEXT NOT NULL
                )
                """,
                """
                CREATE TABLE merchants (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    mode TEXT NOT NULL,
                    default_mdr_bps BIGINT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE api_keys (
                    key_id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL REFERENCES merchants(id),
                    mode TEXT NOT NULL,
                    secret_mac TEXT NOT NULL,
                    secret_sealed TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    revoked_at BIGINT
                )
                """,
                """
                CREATE TABLE orders (
                    id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL REFERENCES merchants(id),
                    amount BIGINT NOT NULL CHECK (amount > 0),
                    amount_paid BIGINT NOT NULL,
                    currency TEXT NOT NULL,
                    receipt TEXT,
                    notes TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempts BIGINT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX orders_merchant_created ON orders (merchant_id, created_at)",
                """
                CREATE TABLE payments (
                    id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL REFERENCES merchants(id),
                    order_id TEXT NOT NULL REFERENCES orders(id),
                    amount BIGINT NOT NULL CHECK (amount > 0),
                    currency TEXT NOT NULL,
                    method TEXT NOT NULL,
                    status TEXT NOT NULL,
                    amount_refunded BIGINT NOT NULL CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
                    vpa TEXT,
                    email TEXT,
                    contact TEXT,
                    description TEXT,
                    notes TEXT NOT NULL,
                    fee BIGINT,
                    tax BIGINT,
                    error_code TEXT,
                    error_description TEXT,
                    error_source TEXT,
                    error_step TEXT,
                    error_reason TEXT,
                    rail TEXT NOT NULL,
                    rail_reference TEXT,
                    authorization_entry_id TEXT,
                    created_at BIGINT NOT NULL,
                    submitted_at_ms BIGINT,
                    authorized_at BIGINT,
                    captured_at BIGINT,
                    next_check_at BIGINT,
                    version BIGINT NOT NULL
                )
                """,
                "CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at)",
                "CREATE INDEX payments_order ON payments (order_id)",
                "CREATE INDEX payments_next_check ON payments (next_check_at)",
                // An order is paid at most once: at most one payment per order that is live or succeeded.
                """
                CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
                WHERE \(PaymentStatesSQL.statusIn(PaymentState.holdingOrder))
                """,
                """
                CREATE TABLE refunds (
                    id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL REFERENCES merchants(id),
                    payment_id TEXT NOT NULL REFERENCES payments(id),
                    amount BIGINT NOT NULL CHECK (amount > 0),
                    currency TEXT NOT NULL,
                    status TEXT NOT NULL,
                    notes TEXT NOT NULL,
                    receipt TEXT,
                    speed_requested TEXT NOT NULL,
                    rail_reference TEXT,
                    created_at BIGINT NOT NULL,
                    processed_at BIGINT,
                    version BIGINT NOT NULL
                )
                """,
                "CREATE INDEX refunds_payment ON refunds (payment_id)",
                "CREATE INDEX refunds_merchant_created ON refunds (merchant_id, created_at)",
                "CREATE INDEX refunds_status ON refunds (status, created_at)",
                """
                CREATE TABLE payment_events (
                    id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL,
                    entity_type TEXT NOT NULL,
                    entity_id TEXT NOT NULL,
                    event TEXT NOT NULL,
                    from_state TEXT,
                    to_state TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX payment_events_entity ON payment_events (entity_id, created_at)",
                """
                CREATE TABLE journal_entries (
                    id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    phase TEXT NOT NULL,
                    pending_entry_id TEXT UNIQUE REFERENCES journal_entries(id),
                    payment_id TEXT,
                    refund_id TEXT,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX journal_entries_payment ON journal_entries (payment_id)",
                """
                CREATE TABLE postings (
                    entry_id TEXT NOT NULL REFERENCES journal_entries(id),
                    seq BIGINT NOT NULL,
                    account TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    amount BIGINT NOT NULL CHECK (amount <> 0),
                    PRIMARY KEY (entry_id, seq)
                )
                """,
                "CREATE INDEX postings_account ON postings (account)",
                """
                CREATE TABLE ledger_accounts (
                    account TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    posted BIGINT NOT NULL,
                    pending BIGINT NOT NULL,
                    PRIMARY KEY (account, currency)
                )
                """,
                """
                CREATE TABLE idempotency_keys (
                    merchant_id TEXT NOT NULL,
                    key TEXT NOT NULL,
                    request_hash TEXT NOT NULL,
                    status TEXT NOT NULL,
                    response_status BIGINT,
                    response_body TEXT,
                    created_at BIGINT NOT NULL,
                    locked_at BIGINT NOT NULL,
                    PRIMARY KEY (merchant_id, key)
                )
                """,
                "CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)",
            ]
            // Append-only tables refuse UPDATE and DELETE at the database level.
            let appendOnly = ["payment_events", "journal_entries", "postings"]
            switch dialect {
            case .sqlite:
                for table in appendOnly {
                    statements.append("""
                        CREATE TRIGGER \(table)_no_update BEFORE UPDATE ON \(table)
                        BEGIN SELECT RAISE(ABORT, '\(table) is append-only'); END
                        """)
                    statements.append("""
                        CREATE TRIGGER \(table)_no_delete BEFORE DELETE ON \(table)
                        BEGIN SELECT RAISE(ABORT, '\(table) is append-only'); END
                        """)
                }
            case .postgres:
                statements.append("""
                    CREATE FUNCTION kosh_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$
                    """)
                for table in appendOnly {
                    statements.append("""
                        CREATE TRIGGER \(table)_append_only BEFORE UPDATE OR DELETE ON \(table)
                        FOR EACH ROW EXECUTE FUNCTION kosh_append_only()
                        """)
                }
            }
            return statements
        },
        Migration(version: 2, name: "live rails") { _ in
            [
                // UPI flow (collect / intent), the intent link, and payments taken in late and given back.
                "ALTER TABLE payments ADD COLUMN flow TEXT NOT NULL DEFAULT 'collect'",
                "ALTER TABLE payments ADD COLUMN upi_link TEXT",
                "ALTER TABLE payments ADD COLUMN auto_refunded BIGINT NOT NULL DEFAULT 0",
                // An auto-refunded late authorisation never paid its order, so it does not count.
                "DROP INDEX payments_one_live_per_order",
                """
                CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
                WHERE \(PaymentStatesSQL.holdsOrder)
                """,
                "ALTER TABLE merchants ADD COLUMN late_authorization TEXT NOT NULL DEFAULT 'refund'",
                "ALTER TABLE merchants ADD COLUMN route_preference TEXT NOT NULL DEFAULT ''",
                """
                CREATE TABLE payment_attempts (
                    id TEXT PRIMARY KEY,
                    payment_id TEXT NOT NULL REFERENCES payments(id),
                    merchant_id TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    connector TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    status TEXT NOT NULL,
                    upstream_reference TEXT,
                    error_code TEXT,
                    error_description TEXT,
                    latency_ms BIGINT,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    UNIQUE (payment_id, seq)
                )
                """,
            ]
        },
        Migration(version: 3, name: "webhooks") { _ in
            [
                // A merchant's receivers. The secret is sealed (AES-256-GCM under the master key).
                """
                CREATE TABLE webhook_endpoints (
                    id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL REFERENCES merchants(id),
                    url TEXT NOT NULL,
                    secret_sealed TEXT NOT NULL,
                    events TEXT NOT NULL,
                    active BIGINT NOT NULL,
                    failing BIGINT NOT NULL DEFAULT 0,
                    created_at BIGINT NOT NULL,
                    deleted_at BIGINT
                )
                """,
                "CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, created_at)",
                // Public events (the outbox), written with the state change they report.
                """
                CREATE TABLE events (
                    id TEXT PRIMARY KEY,
                    merchant_id TEXT NOT NULL,
                    event TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX events_merchant ON events (merchant_id, created_at)",
                """
                CREATE TABLE webhook_deliveries (
                    id TEXT PRIMARY KEY,
                    event_id TEXT NOT NULL REFERENCES events(id),
                    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id),
                    merchant_id TEXT NOT NULL,
                    event TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempts BIGINT NOT NULL DEFAULT 0,
                    next_attempt_at BIGINT,
                    lease_owner TEXT,
                    lease_until BIGINT,
                    last_status_code BIGINT,
                    last_error TEXT,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at)",
                "CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at)",
                """
                CREATE TABLE webhook_attempts (
                    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id),
                    seq BIGINT NOT NULL,
                    at BIGINT NOT NULL,
                    status_code BIGINT,
                    latency_ms BIGINT NOT NULL,
                    response TEXT,
                    error TEXT,
                    lease_owner TEXT NOT NULL,
                    PRIMARY KEY (delivery_id, seq)
                )
                """,
            ]
        },
        Migration(version: 4, name: "notifications") { _ in
            [
                // Where a merchant's own notifications go (`kosh merchant create --email`).
                "ALTER TABLE merchants ADD COLUMN notification_email TEXT",
                // The notification log and queue: one row per message, written in the event's
                // transaction. `recipient` is needed to send; logs and listings show `recipient_masked`.
                """
                CREATE TABLE notifications (
                    id TEXT PRIMARY KEY,
                    event_id TEXT NOT NULL REFERENCES events(id),
                    merchant_id TEXT NOT NULL REFERENCES merchants(id),
                    channel TEXT NOT NULL,
                    audience TEXT NOT NULL,
                    recipient TEXT NOT NULL,
                    recipient_masked TEXT NOT NULL,
                    template TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    body TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempts BIGINT NOT NULL DEFAULT 0,
                    next_attempt_at BIGINT,
                    lease_owner TEXT,
                    lease_until BIGINT,
                    last_error TEXT,
                    created_at BIGINT NOT NULL,
                    sent_at BIGINT
                )
                """,
                "CREATE INDEX notifications_due ON notifications (status, next_attempt_at)",
                "CREATE INDEX notifications_merchant ON notifications (merchant_id, created_at)",
            ]
        },
        Migration(version: 5, name: "event retention") { _ in
            [
                // The janitor's hourly purge of events older than the retention finds them by
                // age and checks their deliveries and notifications by event.
                "CREATE INDEX events_created ON events (created_at)",
                "CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id)",
                "CREATE INDEX notifications_event ON notifications (event_id)",
            ]
        },
        Migration(version: 6, name: "refund retries") { _ in
            [
                // Unsettled refunds are tried again with backoff; the janitor takes the due ones.
                "ALTER TABLE refunds ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE refunds ADD COLUMN next_attempt_at BIGINT",
            ]
        },
        Migration(version: 7, name: "outbox due indexes") { _ in
            [
                // The dispatcher claims due messages of the channels it has configured; messages of
                // a channel it has not (e.g. email without SMTP) wait in the log and must not be
                // walked over by every claim.
                // Partial: only what is still to send, so the index stays small however long the log
                // grows, and PostgreSQL's planner never prefers a scan of the whole table.
                "DROP INDEX notifications_due",
                "CREATE INDEX notifications_due ON notifications (channel, next_attempt_at) WHERE status = 'pending'",
                "DROP INDEX webhook_deliveries_due",
                "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'",
            ]
        },
        Migration(version: 8, name: "striped balances") { _ in
            [
                // A running balance is kept in several rows (stripes) per account, summed on read:
                // concurrent transactions that post to the same hot account (the rail's clearing
                // account, fee revenue, GST) update different rows instead of queueing on one row
                // lock until each other's COMMIT (PostgreSQL). Existing balances become stripe 0.
                """
                CREATE TABLE ledger_account_stripes (
                    account TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    stripe BIGINT NOT NULL,
                    posted BIGINT NOT NULL,
                    pending BIGINT NOT NULL,
                    PRIMARY KEY (account, currency, stripe)
                )
                """,
                "INSERT INTO ledger_account_stripes (account, currency, stripe, posted, pending) SELECT account, currency, 0, posted, pending FROM ledger_accounts",
                "DROP TABLE ledger_accounts",
                "ALTER TABLE ledger_account_stripes RENAME TO ledger_accounts",
            ]
        },
        Migration(version: 9, name: "refund last error") { _ in
            [
                // Why a pending refund did not settle on its last try, for `kosh refunds stuck`.
                "ALTER TABLE refunds ADD COLUMN last_error TEXT",
            ]
        },
        Migration(version: 10, name: "node heartbeats") { _ in
            [
                // One row per running process; an idempotency claim names the process that
                // holds it, so a claim whose process died is taken over within seconds.
                "CREATE TABLE nodes (id TEXT PRIMARY KEY, started_at BIGINT NOT NULL, heartbeat_at BIGINT NOT NULL)",
                "ALTER TABLE idempotency_keys ADD COLUMN owner TEXT",
                // Each claim's own token: a claim taken over (its lease ran out, its node died)
                // can no longer record a response, even on the same node.
                "ALTER TABLE idempotency_keys ADD COLUMN claim_token TEXT",
            ]
        },
        Migration(version: 11, name: "cards") { _ in
            [
                // What the application zone keeps of a card: the vault's token and BIN data,
                // never the number (docs/CARDS.md).
                """
                CREATE TABLE cards (
                    id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, vault_token TEXT NOT NULL, fingerprint TEXT NOT NULL,
                    iin TEXT NOT NULL, last4 TEXT NOT NULL, network TEXT NOT NULL, type TEXT NOT NULL, issuer TEXT,
                    international BIGINT NOT NULL, emi BIGINT NOT NULL, sub_type TEXT NOT NULL, name TEXT,
                    expiry_month BIGINT NOT NULL, expiry_year BIGINT NOT NULL, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX cards_merchant ON cards (merchant_id, created_at)",
                """
                CREATE TABLE card_payments (
                    payment_id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, card_id TEXT NOT NULL, vault_token TEXT NOT NULL,
                    stage TEXT NOT NULL, authentication_id TEXT, challenge_url TEXT, callback_url TEXT, authorization_ref TEXT,
                    task TEXT, task_due_at BIGINT, task_attempts BIGINT NOT NULL, task_error TEXT, save_customer_id TEXT,
                    created_at BIGINT NOT NULL, version BIGINT NOT NULL)
                """,
                "CREATE INDEX card_payments_task_due ON card_payments (task_due_at)",
                "ALTER TABLE payments ADD COLUMN card_id TEXT",
                "ALTER TABLE payments ADD COLUMN auth_code TEXT",
                // The merchant's own rates by method or card key (`key=bps,…`; FeeSchedule.cardRate).
                "ALTER TABLE merchants ADD COLUMN fee_rates TEXT",
                """
                CREATE TABLE customers (
                    id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, name TEXT, email TEXT, contact TEXT, gstin TEXT,
                    notes TEXT NOT NULL, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX customers_merchant ON customers (merchant_id, created_at)",
                "CREATE INDEX customers_identity ON customers (merchant_id, email, contact)",
                """
                CREATE TABLE card_tokens (
                    id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, customer_id TEXT NOT NULL, card_id TEXT NOT NULL,
                    created_at BIGINT NOT NULL, used_at BIGINT, deleted_at BIGINT)
                """,
                "CREATE INDEX card_tokens_customer ON card_tokens (customer_id, created_at)",
            ]
        },
        Migration(version: 12, name: "capture settings") { _ in
            [
                // Orders' `payment_capture` (NULL: the merchant's default), the merchant's
                // default and manual capture window, and what the janitor does with an
                // authorised payment and when (CaptureSettings).
                "ALTER TABLE orders ADD COLUMN payment_capture BIGINT",
                "ALTER TABLE merchants ADD COLUMN auto_capture BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE merchants ADD COLUMN capture_window_seconds BIGINT NOT NULL DEFAULT \(CaptureSettings.defaultWindowSeconds)",
                "ALTER TABLE payments ADD COLUMN capture_action TEXT",
                "ALTER TABLE payments ADD COLUMN capture_due_at BIGINT",
                "CREATE INDEX payments_capture_due ON payments (capture_due_at)",
            ]
        },
        Migration(version: 13, name: "netbanking and wallets") { _ in
            [
                "ALTER TABLE payments ADD COLUMN bank TEXT",
                "ALTER TABLE payments ADD COLUMN wallet TEXT",
                "ALTER TABLE payments ADD COLUMN callback_url TEXT",
            ]
        },
        Migration(version: 14, name: "UPI QR codes") { _ in
            [
                // `/v1/payments/qr_codes` (QRCodesSQL.swift). `version`: optimistic lock.
                """
                CREATE TABLE qr_codes (
                    id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, name TEXT, usage TEXT NOT NULL, type TEXT NOT NULL,
                    fixed_amount BIGINT NOT NULL, payment_amount BIGINT, description TEXT, customer_id TEXT, close_by BIGINT,
                    notes TEXT NOT NULL, status TEXT NOT NULL, closed_at BIGINT, close_reason TEXT,
                    payments_amount_received BIGINT NOT NULL, payments_count_received BIGINT NOT NULL,
                    image_url TEXT NOT NULL, image_content TEXT NOT NULL, created_at BIGINT NOT NULL, version BIGINT NOT NULL)
                """,
                "CREATE INDEX qr_codes_merchant ON qr_codes (merchant_id, created_at)",
                "CREATE INDEX qr_codes_customer ON qr_codes (merchant_id, customer_id, created_at)",
                "CREATE INDEX qr_codes_close_by ON qr_codes (status, close_by)",
                // Each payment into a QR code under the rail's own transaction id: one payment per credit.
                """
                CREATE TABLE qr_payments (
                    payment_id TEXT PRIMARY KEY, qr_code_id TEXT NOT NULL, merchant_id TEXT NOT NULL, rail TEXT NOT NULL,
                    rail_txn_id TEXT NOT NULL, accepted BIGINT NOT NULL, created_at BIGINT NOT NULL)
                """,
                "CREATE UNIQUE INDEX qr_payments_rail_txn ON qr_payments (rail, rail_txn_id)",
                "CREATE INDEX qr_payments_qr ON qr_payments (qr_code_id, created_at)",
            ]
        },
        Migration(version: 15, name: "checkout settings") { _ in
            [
                // CheckoutSettings: the origins a hosted checkout may return to (space-separated), UPI collect on the page.
                "ALTER TABLE merchants ADD COLUMN checkout_origins TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE merchants ADD COLUMN upi_collect BIGINT NOT NULL DEFAULT 0",
            ]
        },
    ]

    /// Applies every migration not yet applied, each in its own transaction. Safe to run
    /// from several processes at once (PostgreSQL: advisory lock; SQLite: BEGIN IMMEDIATE).
    /// Returns the versions applied.
    @discardableResult
    public static func migrate(_ db: any SQLDatabase) async throws -> [Int64] {
        try await db.transaction { conn in
            try await conn.query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)", [])
        }
        var applied: [Int64] = []
        for migration in all {
            let didApply: Bool = try await db.transaction { conn in
                if conn.dialect == .postgres {
                    try await conn.query("SELECT pg_advisory_xact_lock(7461736) AS locked", [])
                }
                let existing = try await conn.query("SELECT version FROM schema_migrations WHERE version = ?", [.int(migration.version)])
                guard existing.isEmpty else { return false }
                for statement in migration.statements(conn.dialect) {
                    try await conn.query(statement, [])
                }
                let record: SQLRecord = ["version": .int(migration.version), "name": .text(migration.name),
                                         "applied_at": .int(SystemClock().nowMillis() / 1000)]
                try await conn.query(record.insertSQL(into: "schema_migrations"), record.binds)
                return true
            }
            if didApply { applied.append(migration.version) }
        }
        return applied
    }

    public static var latestVersion: Int64 { all.last?.version ?? 0 }
}
