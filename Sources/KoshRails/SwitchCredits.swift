import KoshCore
import KoshJSON
import NIOHTTP1
import Synchronization

/// Payer-initiated payments on the UPI switch (QR codes, docs/SANDBOX.md): Kosh is the payee's
/// PSP for `qrPayeeVPA`'s handle. The switch sends a signed credit notification when a payer's
/// app pays one of Kosh's QR codes; Kosh believes only the transaction id in it, and asks the
/// switch (`GET /upi/v1/transactions/{id}`) what happened.
extension UPISwitchConnector: PayerInitiatedRail {
    public static let defaultQRPayeeVPA = "kosh.qr@kosh"

    public var qrPayeeVPA: String { Self.defaultQRPayeeVPA }

    public func creditTransactionID(method: String, path: String, headers: [String: String], body: [UInt8]) throws -> String {
        let json = try CallbackReader(signer: http.signer, clock: http.clock).verified(method: method, path: path, headers: headers, body: body)
        guard let id = json["txn_id"]?.stringValue, !id.isEmpty, id.utf8.count <= 64,
              id.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw KoshError.badRequest("The credit notification has no valid txn_id", field: "txn_id")
        }
        return id
    }

    public func confirmCredit(transactionID: String) async throws -> RailCredit? {
        let (status, json) = try await http.call(name, .GET, "/upi/v1/transactions/\(percentEncoded(transactionID))",
                                                 timeoutMillis: http.configuration.statusTimeoutMillis, idempotent: true)
        if status == 404 { return nil }
        guard status == 200 else { throw UpstreamError.noAnswer("HTTP \(status) from the UPI switch") }
        guard json["txn_id"]?.stringValue == transactionID else { return nil }
        return credit(json)
    }

    /// A successful payer-initiated transaction to Kosh's QR payee, as the switch shows it; nil for anything else.
    func credit(_ json: JSON) -> RailCredit? {
        guard json["status"]?.stringValue == "SUCCESS", json["mode"]?.stringValue == "qr", json["payee_vpa"]?.stringValue == qrPayeeVPA,
              let transactionID = json["txn_id"]?.stringValue, let amount = json["amount"]?.intValue, amount > 0,
              let reference = json["tr"]?.stringValue, let rrn = json["rrn"]?.stringValue else { return nil }
        return RailCredit(transactionID: transactionID, rrn: rrn, reference: reference, payeeVPA: qrPayeeVPA,
                          payerVPA: json["payer_vpa"]?.stringValue, amount: amount)
    }

    public func reconcileCredits(_ record: @Sendable (RailCredit) async throws -> Void) async throws -> Int {
        let now = http.clock.nowMillis()
        // At most one pass every 5 s (the janitor asks on every pass); the first starts 15 minutes back.
        guard let start = payeeRegistration.reconciliation.withLock({ state -> Int64? in
            guard now - state.lastRun >= 5_000 else { return nil }
            state.lastRun = now
            return state.cursor ?? now - 15 * 60_000
        }) else { return 0 }
        let handle = String(qrPayeeVPA.split(separator: "@").last ?? "kosh")
        var cursor = start, handed = 0
        pages: for _ in 0..<10 {
            let (status, json) = try await http.call(name, .GET, "/upi/v1/payees/\(handle)/transactions?from=\(cursor)&count=200",
                                                     timeoutMillis: http.configuration.statusTimeoutMillis, idempotent: true)
            guard status == 200, case .array(let items)? = json["items"] else { throw UpstreamError.noAnswer("reconciliation: HTTP \(status) from the UPI switch") }
            for item in items {
                guard let created = item["created_at"]?.intValue else { continue }
                // A transaction still pending may yet succeed: the cursor waits for it.
                if item["status"]?.stringValue == "PENDING" { break pages }
                if let credit = credit(item) {
                    try await record(credit)
                    handed += 1
                }
                cursor = created  // inclusive: credits of the same millisecond are seen again (recording is idempotent)
            }
            if items.count < 200 { break }
        }
        payeeRegistration.reconciliation.withLock { $0.cursor = cursor }
        return handed
    }

    public func registerPayee() async throws {
        let url = http.creditURL(for: name)
        guard payeeRegistration.url.withLock({ $0 }) != url else { return }
        // After a failure, at most one try every 5 s (the janitor asks on every pass).
        let now = http.clock.nowMillis()
        guard payeeRegistration.lastFailure.withLock({ now - $0 >= 5_000 }) else {
            throw UpstreamError.unavailable("registering the QR payee failed less than 5 s ago")
        }
        defer { if payeeRegistration.url.withLock({ $0 }) != url { payeeRegistration.lastFailure.withLock { $0 = now } } }
        let handle = String(qrPayeeVPA.split(separator: "@").last ?? "kosh")
        let (status, _) = try await http.call(name, .PUT, "/upi/v1/payees/\(handle)", body: .object([("callback_url", .string(url))]),
                                              timeoutMillis: http.configuration.statusTimeoutMillis, idempotent: true)
        guard status == 200 else { throw UpstreamError.noAnswer("registering @\(handle): HTTP \(status) from the UPI switch") }
        payeeRegistration.url.withLock { $0 = url }
    }
}

/// What the switch last accepted as Kosh's credit URL (registered again when it changes).
final class PayeeRegistration: Sendable {
    let url = Mutex<String?>(nil)
    let lastFailure = Mutex<Int64>(Int64.min / 2)
    /// Reconciliation: where the next pass starts (unix ms of the switch's `created_at`), and when the last one ran.
    let reconciliation = Mutex<(cursor: Int64?, lastRun: Int64)>((nil, Int64.min / 2))
}
