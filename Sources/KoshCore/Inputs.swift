/// Input for a new order, already validated for shape by the HTTP layer.
public struct NewOrder: Sendable {
    public var amount: Int64
    public var currency: Currency
    public var receipt: String?
    public var notes: Notes
    /// `payment_capture` (nil: the merchant's default).
    public var paymentCapture: Bool?
    public init(amount: Int64, currency: Currency, receipt: String?, notes: Notes, paymentCapture: Bool? = nil) {
        self.paymentCapture = paymentCapture
        self.amount = amount
        self.currency = currency
        self.receipt = receipt
        self.notes = notes
    }
}

public struct NewPayment: Sendable {
    public var orderID: ID<Order>
    public var amount: Int64
    public var currency: Currency
    public var method: PaymentMethod
    public var vpa: String?
    public var email: String?
    public var contact: String?
    public var description: String?
    public var notes: Notes
    public var flow: UPIFlow
    /// Netbanking's bank, a wallet payment's wallet (Razorpay's codes).
    public var bank: String?
    public var wallet: String?
    /// Where the customer's browser is sent with the result (redirect methods).
    public var callbackURL: String?
    public init(orderID: ID<Order>, amount: Int64, currency: Currency, method: PaymentMethod, vpa: String?, email: String?,
                contact: String?, description: String?, notes: Notes, flow: UPIFlow = .collect, bank: String? = nil, wallet: String? = nil,
                callbackURL: String? = nil) {
        self.bank = bank
        self.wallet = wallet
        self.callbackURL = callbackURL
        self.flow = flow
        self.orderID = orderID
        self.amount = amount
        self.currency = currency
        self.method = method
        self.vpa = vpa
        self.email = email
        self.contact = contact
        self.description = description
        self.notes = notes
    }
}

public struct NewRefund: Sendable {
    /// nil refunds everything still refundable.
    public var amount: Int64?
    public var speed: RefundSpeed
    public var receipt: String?
    public var notes: Notes
    public init(amount: Int64?, speed: RefundSpeed, receipt: String?, notes: Notes) {
        self.amount = amount
        self.speed = speed
        self.receipt = receipt
        self.notes = notes
    }
}

/// How a UPI payment reaches the payer.
public enum UPIFlow: String, Sendable, Hashable, CaseIterable {
    /// The payer approves a request sent to their VPA.
    case collect
    /// The payer's app pays a `upi://pay` link (or its QR code).
    case intent
    /// The payer scanned a merchant's QR code (`/v1/payments/qr_codes`) and paid on their own
    /// initiative: the rail's transaction id is its own, not the payment's.
    case qr
}

/// Razorpay's payment methods. Kosh takes UPI today; the others come with their issues.
public enum PaymentMethod: String, Sendable, Hashable, CaseIterable {
    case upi, card, netbanking, wallet, emi
    case cardlessEMI = "cardless_emi"
    case paylater
}

/// Razorpay's refund speeds.
public enum RefundSpeed: String, Sendable, Hashable, CaseIterable {
    case normal, optimum
}
