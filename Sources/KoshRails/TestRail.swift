import KoshCore

/// The in-process rail behind `rzp_test_` keys. Like Razorpay's test mode it decides the
/// outcome by instrument, and it never reaches a real network:
///
/// - UPI VPA `success@razorpay`: accepted, then authorised once `approvalDelayMillis` have
///   passed since submission (the payer "approves" in their app);
/// - UPI VPA `failure@razorpay`: accepted, then declined after the same delay, with
///   Razorpay's error fields;
/// - any other VPA: refused when the payment is created (test mode knows no other payers).
///
/// Its answers are a pure function of the request and the clock, so a status check after a
/// restart gives the same answer as before it — this is what lets the janitor resolve
/// payments whose server stopped mid-flight. Refunds are processed at once.
public struct TestRail: PaymentRail {
    public static let successVPA = "success@razorpay"
    public static let failureVPA = "failure@razorpay"

    public let name = "test_upi"
    /// In-process, a pure function of the request and the clock: the gateway creates, submits
    /// and answers a payment (and processes a refund) in one transaction.
    public var answersInProcess: Bool { true }
    public let approvalDelayMillis: Int64
    let clock: any KoshClock

    public init(approvalDelayMillis: Int64, clock: any KoshClock) {
        precondition(approvalDelayMillis >= 0)
        self.approvalDelayMillis = approvalDelayMillis
        self.clock = clock
    }

    public static let declined = PaymentFailure(
        code: "BAD_REQUEST_ERROR",
        description: "Payment was unsuccessful as the payer declined the collect request on their UPI app.",
        source: "customer", step: "payment_authorization", reason: "payment_declined")

    public func validate(method: PaymentMethod, vpa: String?) -> KoshError? {
        // Netbanking and wallets: Razorpay's test mode sends every bank and wallet to one mock
        // page where the tester picks success or failure; Kosh serves that page itself.
        if method == .netbanking || method == .wallet { return nil }
        guard method == .upi else {
            return .badRequest("Only the upi method is supported", field: "method")
        }
        guard let vpa else { return .badRequest("The vpa field is required", field: "vpa") }
        switch vpa.lowercased() {
        case Self.successVPA, Self.failureVPA: return nil
        default:
            return .badRequest("Invalid VPA. In test mode use \(Self.successVPA) or \(Self.failureVPA)", field: "vpa",
                               reason: "invalid_vpa")
        }
    }

    public func initiate(_ request: RailPaymentRequest) async throws -> RailInitiation {
        if let problem = validate(method: request.method, vpa: request.vpa) {
            return .rejected(PaymentFailure(code: "BAD_REQUEST_ERROR", description: problem.message, source: "customer",
                                            step: "payment_initiation", reason: "invalid_vpa"))
        }
        if request.method == .netbanking || request.method == .wallet {
            // The mock bank page beside the return URL (`/v1/payments/:id/test_redirect`).
            guard let returnURL = request.returnURL, returnURL.hasSuffix(Self.returnSuffix) else {
                return .rejected(PaymentFailure(code: "BAD_REQUEST_ERROR", description: "No page to send the customer to", source: "gateway",
                                                step: "payment_initiation", reason: "gateway_technical_error"))
            }
            return .accepted(reference: reference(for: request.paymentID.rawValue),
                             link: String(returnURL.dropLast(Self.returnSuffix.count)) + "/test_redirect")
        }
        return .accepted(reference: reference(for: request.paymentID.rawValue), link: nil)
    }

    static let returnSuffix = "/redirect/return"

    public func status(_ request: RailPaymentRequest) async throws -> RailPaymentStatus {
        // A netbanking or wallet payment ends when the tester picks on the mock page (the page
        // reports it to Kosh as this rail's callback); until then, and for a status check, pending.
        if request.method == .netbanking || request.method == .wallet { return .pending }
        if clock.now < request.submittedAt + approvalDelayMillis { return .pending }
        switch request.vpa?.lowercased() {
        case Self.successVPA: return .authorized(reference: reference(for: request.paymentID.rawValue))
        default: return .failed(Self.declined)
        }
    }

    public func refund(_ request: RailRefundRequest) async throws -> RailRefundStatus {
        .processed(reference: "test_rfnd_" + request.refundID.rawValue.dropFirst("rfnd_".count))
    }

    public func lookup(vpa: String) async throws -> VPALookup {
        switch vpa.lowercased() {
        case Self.successVPA, Self.failureVPA: VPALookup(vpa: vpa, valid: true, customerName: "Gaurav Kumar")
        default: VPALookup(vpa: vpa, valid: false, customerName: nil)
        }
    }

    func reference(for paymentID: String) -> String {
        "test_" + paymentID.dropFirst("pay_".count)
    }
}
