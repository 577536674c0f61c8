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
        guard json["status"]?.stringValue == "SUCCESS", json["mode"]?.stringValue == "qr",
              json["payee_vpa"]?.stringValue == qrPayeeVPA, json["txn_id"]?.stringValue == transactionID,
              let amount = json["amount"]?.intValue, amount > 0, let reference = json["tr"]?.stringValue,
              let rrn = json["rrn"]?.stringValue else { return nil }
        return RailCredit(transactionID: transactionID, rrn: rrn, reference: reference, payeeVPA: qrPayeeVPA,
                          payerVPA: json["payer_vpa"]?.stringValue, amount: amount)
    }

    public func registerPayee() async throws {
        let url = http.creditURL(for: name)
        guard payeeRegistration.url.withLock({ $0 }) != url else { return }
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
}
