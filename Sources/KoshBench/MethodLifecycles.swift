import KoshJSON
import NIOHTTP1

/// The sandbox playing the payer in live-mode lifecycles: a payer's UPI app paying a QR code's
/// link, a customer approving on a bank's page. `kosh bench` provides it (signed calls).
public protocol SandboxPlayer: Sendable {
    /// `POST /upi/v1/app/pay`: the payer's app pays `link`.
    func payQR(link: String, payerVPA: String) async throws
    /// `POST /sandbox/v1/redirect/{id}/approve`: the customer approves on the bank's page.
    func approveRedirect(paymentID: String) async throws
}

extension LoadGenerator {
    typealias Call = (_ name: String, _ method: HTTPMethod, _ path: String, _ body: String?) async throws -> JSON

    /// A QR lifecycle: create a single-use fixed-amount code → the payer's app pays its link at
    /// the sandbox → the switch notifies Kosh, Kosh confirms and captures → poll the code until
    /// it is paid (closed, `paid`) → a share of partial refunds of the payment.
    func qrLifecycle(_ call: Call) async throws {
        guard let sandbox = options.sandbox else { throw RequestFailure(kind: "qr lifecycles need the sandbox (live mode)") }
        let amount = options.amount
        let qr = try await call("qr.create", .POST, "/v1/payments/qr_codes",
                                #"{"type":"upi_qr","usage":"single_use","fixed_amount":true,"payment_amount":\#(amount),"name":"Load"}"#)
        let id = try string(qr, "id")
        do {
            try await sandbox.payQR(link: try string(qr, "image_content"), payerVPA: payer())
        } catch {
            throw RequestFailure(kind: "sandbox app/pay: \(error)")
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let current = try await call("qr.fetch", .GET, "/v1/payments/qr_codes/\(id)", nil)
            if current["close_reason"] == .string("paid") { break }
            if current["status"] == .string("closed") || ContinuousClock.now > deadline { throw RequestFailure(kind: "qr not paid") }
            try await Task.sleep(for: .milliseconds(20))
        }
        if Int.random(in: 0..<1000) < options.refundPerMille {
            let payments = try await call("qr.payments", .GET, "/v1/payments/qr_codes/\(id)/payments", nil)
            guard case .array(let items)? = payments["items"], case .string(let payment)? = items.first?["id"] else {
                throw RequestFailure(kind: "qr payment missing")
            }
            _ = try await call("refund.create", .POST, "/v1/payments/\(payment)/refund", #"{"amount":\#(amount / 2)}"#)
        }
    }

    /// A netbanking payment on `order`, approved by the customer at the sandbox bank. Kosh
    /// learns of it from the bank's callback (or its status checks); the caller captures it
    /// once it is authorised.
    func netbankingPayment(order: String, _ call: Call) async throws -> String {
        guard let sandbox = options.sandbox else { throw RequestFailure(kind: "netbanking lifecycles need the sandbox (live mode)") }
        let created = try await call("payment.create_json", .POST, "/v1/payments/create/json", """
            {"order_id":"\(order)","amount":\(options.amount),"currency":"INR","method":"netbanking","bank":"\(options.bank)",\
            "email":"load@example.com","contact":"9123456789"}
            """)
        let payment = try string(created, "razorpay_payment_id")
        do {
            try await sandbox.approveRedirect(paymentID: payment)
        } catch {
            throw RequestFailure(kind: "sandbox approve: \(error)")
        }
        return payment
    }
}
