import AsyncHTTPClient
import Foundation
import KoshBench
import KoshCore
import KoshJSON
import KoshRails
import KoshTesting
import NIOCore
import NIOHTTP1
import Testing

/// QR codes in live mode against the sandbox's UPI switch, on both databases: the payer's app
/// pays the code's link, the switch notifies Kosh (signed), Kosh confirms with the switch and
/// records a captured payment; duplicated notifications, forged ones, and a closed code's
/// automatic refund over the switch.
@Suite("QR codes live: the payer's app, the switch's credit, Kosh's confirmation", .serialized, .timeLimit(.minutes(3)))
struct QRCodeLiveTests {
    /// Waits until the code holds `count` payments each satisfying `done`.
    static func payments(_ live: LiveKosh, _ qr: String, count: Int, seconds: Double = 20,
                         until done: (Payment) -> Bool = { _ in true }) async throws -> [Payment] {
        let deadline = Date().addingTimeInterval(seconds)
        var found: [Payment] = []
        while Date() < deadline {
            found = try await live.services.flows.qrCodePayments(id: ID(qr), merchantID: live.kosh.merchant.merchant.id, page: Page(count: 100))
            if found.count == count && found.allSatisfy(done) { return found }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("QR code \(qr): \(found.count) payments, wanted \(count): \(found.map { ($0.id, $0.state) })")
        return found
    }

    static func appPay(_ live: LiveKosh, _ link: String, payer: String = "success.asha@ybl", amount: Int64? = nil) async throws -> String {
        var body: [(String, JSON)] = [("link", .string(link)), ("payer_vpa", .string(payer))]
        if let amount { body.append(("amount", .int(amount))) }
        let (status, json) = try await live.sandbox(.POST, "/upi/v1/app/pay", JSON.object(body).serialized())
        #expect(status == 202, "\(json.serialized())")
        guard case .string(let txn)? = json["txn_id"] else {
            Issue.record("no txn_id: \(json.serialized())")
            return ""
        }
        return txn
    }

    /// POSTs a credit notification to Kosh as the switch would, signed with `secret`.
    static func notify(_ live: LiveKosh, txn: String, secret: String = "live-test-secret") async throws -> (Int, JSON) {
        let port = try #require(live.kosh.client.port)
        let request = RailSigner(secret: secret).request(baseURL: "http://127.0.0.1:\(port)", method: .POST, path: "/v1/rails/credits/upi_switch",
                                                         body: #"{"txn_id": "\#(txn)", "status": "SUCCESS", "amount": 99999999}"#)
        let response = try await live.admin.execute(request, timeout: .seconds(10))
        let buffer = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), (try? JSON.parse(buffer.readableBytesView)) ?? .null)
    }

    @Test("a fixed single-use code and an any-amount code paid by the payer's app; duplicates and forgeries change nothing",
          arguments: TestDatabases.all)
    func paidThroughTheSwitch(_ kind: String) async throws {
        try await LiveKosh.run(kind) { live in
            let created = try await live.kosh.call(.post, "/v1/payments/qr_codes",
                                                   #"{"type": "upi_qr", "name": "Live Store", "usage": "single_use", "fixed_amount": true, "payment_amount": 30000}"#)
            #expect(created.status == 200, "\(created.body)")
            let qr = try #require(created.string("id"))
            let link = try #require(created.string("image_content"))
            // Kosh told the switch where its credits go.
            let payee = try await live.sandbox(.GET, "/upi/v1/payees/kosh")
            #expect(payee.0 == 200 && payee.1["callback_url"] == .string("http://127.0.0.1:\(live.kosh.client.port ?? 0)/v1/rails/credits/upi_switch"), "\(payee.1.serialized())")

            let txn = try await Self.appPay(live, link)
            let paid = try #require(try await Self.payments(live, qr, count: 1) { $0.state == .captured }.first)
            #expect(paid.rail == "upi_switch" && paid.flow == .qr && paid.railReference == txn && paid.vpa == "success.asha@ybl")
            let entity = try await live.kosh.call(.get, "/v1/payments/\(paid.id.rawValue)")
            #expect(entity.string("status") == "captured" && entity.json["acquirer_data"]?["rrn"] == .string(txn) && entity.int("amount") == 30_000)
            let code = try await live.kosh.call(.get, "/v1/payments/qr_codes/\(qr)")
            #expect(code.string("status") == "closed" && code.string("close_reason") == "paid" && code.int("payments_amount_received") == 30_000)

            // The switch's notification again, and a forged one: nothing new.
            let replay = try await Self.notify(live, txn: txn)
            #expect(replay.0 == 200 && replay.1["payment_id"] == .string(paid.id.rawValue), "\(replay.1.serialized())")
            let forged = try await Self.notify(live, txn: txn, secret: "not-the-secret")
            #expect(forged.0 == 401, "\(forged.1.serialized())")
            let unknown = try await Self.notify(live, txn: "999999999999")
            #expect(unknown.0 == 400, "the switch does not confirm it: \(unknown.1.serialized())")

            // A payer who declines: the switch tells Kosh nothing, and Kosh records nothing.
            let any = try await live.kosh.call(.post, "/v1/payments/qr_codes", #"{"type": "upi_qr", "name": "Tips"}"#)
            let anyID = try #require(any.string("id"))
            let anyLink = try #require(any.string("image_content"))
            let declined = try await Self.appPay(live, anyLink, payer: "failure@ybl", amount: 500)
            #expect(try await Self.notify(live, txn: declined).0 == 400, "a declined transaction is no credit")

            // Every callback sent twice: one payment per transaction.
            #expect(try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"duplicate_callback_rate": 1.0}"#).0 == 200)
            _ = try await Self.appPay(live, anyLink, amount: 1_234)
            _ = try await Self.appPay(live, anyLink, payer: "success.meena@okicici", amount: 5_678)
            let both = try await Self.payments(live, anyID, count: 2) { $0.state == .captured }
            #expect(Set(both.map(\.amount)) == [1_234, 5_678])
            let stats = try await live.sandbox(.GET, "/sandbox/v1/stats").1
            #expect(stats["upi_switch"]?["callbacks_duplicated"] != .int(0), "\(stats.serialized())")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await live.kosh.call(.get, "/v1/payments/qr_codes/\(anyID)").int("payments_count_received") == 2)
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a credit whose notification is lost is found by the janitor's reconciliation with the switch", arguments: TestDatabases.all)
    func lostNotification(_ kind: String) async throws {
        try await LiveKosh.run(kind) { live in
            let created = try await live.kosh.call(.post, "/v1/payments/qr_codes", #"{"type": "upi_qr", "name": "Quiet"}"#)
            let qr = try #require(created.string("id"))
            #expect(try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"drop_callback_rate": 1.0}"#).0 == 200)
            let txn = try await Self.appPay(live, try #require(created.string("image_content")), amount: 4_321)
            let found = try #require(try await Self.payments(live, qr, count: 1) { $0.state == .captured }.first)
            #expect(found.railReference == txn && found.amount == 4_321)
            let stats = try await live.sandbox(.GET, "/sandbox/v1/stats").1
            #expect(stats["upi_switch"]?["callbacks_dropped"] != .int(0), "\(stats.serialized())")
            // The switch's list names it; recording it again changes nothing.
            let listed = try await live.sandbox(.GET, "/upi/v1/payees/kosh/transactions?from=0&count=10").1
            #expect(listed["items"]?.serialized().contains(txn) == true, "\(listed.serialized())")
            #expect(try await live.services.flows.reconcileQRCredits() == 0)
            #expect(try await live.kosh.call(.get, "/v1/payments/qr_codes/\(qr)").int("payments_count_received") == 1)
            try await live.kosh.expectLedgerConsistent()
        }
    }

    /// The sandbox as the load tool's payer, through the test's signed client.
    struct Player: SandboxPlayer {
        let live: LiveKosh
        func payQR(link: String, payerVPA: String) async throws {
            let body = JSON.object([("link", .string(link)), ("payer_vpa", .string(payerVPA))]).serialized()
            let (status, json) = try await live.sandbox(.POST, "/upi/v1/app/pay", body)
            guard status == 202 else { throw KoshError.badRequest("app/pay: \(status) \(json.serialized())") }
        }
        func approveRedirect(paymentID: String) async throws {
            let (status, json) = try await live.sandbox(.POST, "/sandbox/v1/redirect/\(paymentID)/approve")
            guard status == 200 else { throw KoshError.badRequest("approve: \(status) \(json.serialized())") }
        }
    }

    @Test("kosh bench drives QR and netbanking lifecycles in live mode", arguments: [LoadMethod.qr, .netbanking])
    func loadTool(_ method: LoadMethod) async throws {
        try await LiveKosh.run("sqlite") { live in
            let port = try #require(live.kosh.client.port)
            var options = LoadOptions(url: "http://127.0.0.1:\(port)", keyID: live.kosh.merchant.keyID, keySecret: live.kosh.merchant.keySecret)
            options.method = method
            options.sandbox = Player(live: live)
            options.vpa = "success.load{n}@okhdfcbank"
            options.duration = 3
            options.warmup = 0
            options.concurrency = 4
            options.refundPerMille = 500
            let generator = LoadGenerator(options: options)
            let report = try await generator.run()
            try await generator.shutdown()
            #expect(report.lifecycles > 0 && report.errors.isEmpty, "\(report.text())")
            #expect(report.latencies.contains { $0.name == (method == .qr ? "qr.create" : "payment.create_json") })
            try await Task.sleep(for: .milliseconds(500))  // refunds of the last lifecycles settle
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a closed code and a wrong amount: the payer's money is refunded over the switch, the ledger right", arguments: TestDatabases.all)
    func refundedOverTheSwitch(_ kind: String) async throws {
        try await LiveKosh.run(kind) { live in
            let created = try await live.kosh.call(.post, "/v1/payments/qr_codes",
                                                   #"{"type": "upi_qr", "usage": "multiple_use", "fixed_amount": true, "payment_amount": 20000}"#)
            let qr = try #require(created.string("id"))
            let link = try #require(created.string("image_content"))
            let wrong = try await Self.appPay(live, link, amount: 19_000)
            let refunded = try #require(try await Self.payments(live, qr, count: 1) { $0.state == .refunded }.first)
            #expect(refunded.railReference == wrong && refunded.autoRefunded)
            #expect(try await live.kosh.call(.post, "/v1/payments/qr_codes/\(qr)/close").status == 200)
            let late = try await Self.appPay(live, link)
            let two = try await Self.payments(live, qr, count: 2) { $0.state == .refunded }
            #expect(two.contains { $0.railReference == late })
            for payment in two {
                // The refund goes to the switch right after the credit is recorded; wait for its answer.
                var refunds = try await live.kosh.call(.get, "/v1/payments/\(payment.id.rawValue)/refunds")
                for _ in 0..<200 where refunds.json["items"]?[0]?["status"] != .string("processed") {
                    try await Task.sleep(for: .milliseconds(25))
                    refunds = try await live.kosh.call(.get, "/v1/payments/\(payment.id.rawValue)/refunds")
                }
                #expect(refunds.json["items"]?[0]?["status"] == .string("processed"), "\(refunds.body)")
                // The switch holds the refund: nothing more can be refunded there.
                let more = try await live.sandbox(.POST, "/upi/v1/refunds",
                                                  #"{"refund_id": "rfnd_extra\#(payment.amount)", "txn_id": "\#(payment.railReference ?? "")", "amount": 1}"#)
                #expect(more.0 == 400 && more.1["error"]?["code"] == .string("REFUND_EXCEEDS"), "\(more.1.serialized())")
            }
            #expect(try await live.kosh.call(.get, "/v1/payments/qr_codes/\(qr)").int("payments_count_received") == 0)
            try await live.kosh.expectLedgerConsistent()
        }
    }
}
