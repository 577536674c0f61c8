/// The environment variables `kosh serve` reads (`KoshConfiguration.fromEnvironment` and the
/// logger), for `kosh serve --help`. Lines stay under 80 columns: ArgumentParser wraps longer
/// ones without indenting them. README.md's Configuration section says more about each.
let environmentHelp = """
    Environment variables (README.md, Configuration, has the details):
      DATABASE_URL                  database URL, as for --database
      KOSH_MASTER_KEY               the master key, base64 of 32 bytes
      KOSH_MASTER_KEY_FILE          master key file when KOSH_MASTER_KEY is unset
                                    (default: kosh-master.key beside the SQLite
                                    file, ./kosh-master.key for PostgreSQL)
      KOSH_LOG_LEVEL                trace, debug, info (default), notice, ...
      KOSH_TEST_APPROVAL_DELAY_MS   test-rail approval delay (default 1500)
      KOSH_RAILS_URL                where live payments go (default: the
                                    sandbox, started in-process)
      KOSH_RAILS_SECRET             HMAC secret shared with the rails
      KOSH_PUBLIC_URL               Kosh's base URL as the rails call it back
      KOSH_SANDBOX                  off: no in-process sandbox
      KOSH_SANDBOX_PORT             in-process sandbox port (or --sandbox-port)
      KOSH_SANDBOX_SEED             in-process sandbox fault seed
      KOSH_SANDBOX_ACQUIRER_PORT    in-process sandbox's ISO 8583 acquirer port
      KOSH_ACQUIRER_ADDR            card acquirer host:port (default: the
                                    in-process sandbox's)
      KOSH_CARD_AUTH_TIMEOUT_MS     card authorisation wait before a reversal
                                    (default 10000)
      KOSH_CARD_ROUTING_RULES       card routing rules: "prefer|avoid CONNECTOR
                                    [network=] [issuer=] [type=] [origin=]; …"
                                    (default "prefer acquirer issuer=HDFC")
      KOSH_VAULT_URL                card vault (default: in-process on a Unix
                                    socket in KOSH_VAULT_DIR)
      KOSH_VAULT_DIR                the vault's directory (default kosh-vault
                                    beside the SQLite file)
      KOSH_UPI_POLL_INTERVAL_MS     UPI status polling interval (default 2000)
      KOSH_UPI_POLL_WINDOW_MS       UPI status polling window (default 30000)
      KOSH_PENDING_TIMEOUT_MS       pending payment times out (default 900000)
      KOSH_ROUTING_EXPLORATION_PERCENT
                                    share of live payments sent to another
                                    connector first, 0-100 (default 10)
      KOSH_WEBHOOK_RETRY_SCHEDULE_MS
                                    webhook retry delays, comma-separated ms
      KOSH_WEBHOOK_TIMEOUT_MS       one webhook POST's limit (default 5000)
      KOSH_WEBHOOK_LEASE_MS         claim on a delivery (default 30000)
      KOSH_WEBHOOK_ALLOW_PRIVATE    1: webhooks may reach private addresses
      KOSH_EVENT_RETENTION_DAYS     days events are kept, 30-3650 (default 30)
      KOSH_SMTP_URL                 smtp://host:port for email notifications
      KOSH_SMTP_FROM                sender (default no-reply@kosh.localhost)
      KOSH_NOTIFY_PROVIDER_URL      SMS and push providers' base URL
      KOSH_NOTIFY_PROVIDER_SECRET   their signing secret
      KOSH_NOTIFY_RETRY_SCHEDULE_MS notification retry delays, as for webhooks
      KOSH_HTTP_HEAD_TIMEOUT_MS     request head time limit (default 10000)
      KOSH_HTTP_BODY_TIMEOUT_MS     request body time limit (default 30000)
      KOSH_HTTP_IDLE_TIMEOUT_MS     idle connection closed after (default 60000)
      KOSH_HTTP_SEND_TIMEOUT_MS     client not reading closed after (default 30000)
      KOSH_HTTP_MAX_CONNECTIONS     open client connections at most
    """
