import KoshCore
import Testing

@Suite("Masking and notification templates")
struct MaskingTests {
    @Test("phone numbers keep two digits at each end", arguments: [
        ("9123456789", "91******89"), ("+91 91234 56789", "91********89"), ("1234", "****"), ("", ""),
    ])
    func phone(input: String, masked: String) {
        #expect(Masking.phone(input) == masked)
    }

    @Test("emails keep two characters of the local part and the domain", arguments: [
        ("gaurav.kumar@example.com", "ga***@example.com"), ("a@b.in", "a***@b.in"), ("no-at-sign", "***"),
    ])
    func email(input: String, masked: String) {
        #expect(Masking.email(input) == masked)
    }

    @Test func otpIsNeverShown() {
        #expect(Masking.otp("123456") == "******")
        #expect(Masking.otp("") == "*")
    }

    @Test func recipientsOfEveryChannel() {
        #expect(Masking.recipient("gaurav.kumar@example.com") == "ga***@example.com")
        #expect(Masking.recipient("9123456789") == "91******89")
        #expect(Masking.recipient("device-token-abcdef") == "***cdef")
    }

    @Test func freeTextMasksAddressesPhonesAndOTPs() {
        let text = "550 5.1.1 <gaurav.kumar@example.com>: unknown; sms to 9123456789 with OTP 482913 refused"
        let masked = Masking.text(text)
        #expect(masked == "550 5.1.1 <ga***@example.com>: unknown; sms to 91******89 with OTP ****** refused")
        #expect(!masked.contains("gaurav.kumar"))
        #expect(!masked.contains("9123456789"))
        #expect(!masked.contains("482913"))
    }

    @Test func templatesRenderPlaceholders() {
        #expect(NotificationTemplate.render("Paid {{amount}} to {{ merchant_id }}{{missing}}.", ["amount": "INR 500.00", "merchant_id": "mer_1"])
                == "Paid INR 500.00 to mer_1.")
        #expect(NotificationTemplate.render("open {{never closed", [:]) == "open {{never closed")
        #expect(NotificationTemplates.amount(50_000, currency: "INR") == "INR 500.00")
        #expect(NotificationTemplates.amount(5, currency: "INR") == "INR 0.05")
    }

    @Test func aCaptureNotifiesCustomerByEveryChannelAndTheMerchantByEmail() {
        let payment = Payment(id: "pay_1", merchantID: "mer_1", orderID: "order_1", currency: .inr, method: .upi, vpa: "a@okbank",
                              email: "gaurav.kumar@example.com", contact: "9123456789", description: nil, notes: Notes(),
                              machine: PaymentMachine(amount: 50_000, state: .captured), rail: "test", createdAt: 1)
        let event = OutboxEvent(id: "evt_1", merchantID: "mer_1", name: .paymentCaptured, body: "{}", createdAt: 1)
        let recipients = OutboxRecipients(endpoints: [.init(id: "wh_1", events: [.paymentCaptured]), .init(id: "wh_2", events: [.refundProcessed])],
                                          merchantEmail: "ops@merchant.example")
        let plan = OutboxPlanner.plan(event, payment: payment, refund: nil, recipients: recipients)
        #expect(plan.deliveries == ["wh_1"])
        #expect(plan.notifications.map(\.channel) == [.email, .sms, .push, .email])
        #expect(plan.notifications.map(\.recipient) == ["gaurav.kumar@example.com", "9123456789", "9123456789", "ops@merchant.example"])
        #expect(plan.notifications[0].subject == "Payment of INR 500.00 successful")
        #expect(OutboxPlanner.plan(event, payment: payment, refund: nil, recipients: OutboxRecipients()).notifications.count == 3)
        let authorized = OutboxEvent(id: "evt_2", merchantID: "mer_1", name: .paymentAuthorized, body: "{}", createdAt: 1)
        let quiet = OutboxPlanner.plan(authorized, payment: payment, refund: nil, recipients: recipients)
        #expect(quiet.notifications.isEmpty && quiet.deliveries.isEmpty)
    }

    @Test("an @ that a modifier joins to the next character still splits an address")
    func joinedAt() {
        let address = "asha@\u{1F3FB}example.com"
        #expect(Masking.recipient(address) == "as***@\u{1F3FB}example.com")
        #expect(!Masking.text("mail to \(address) failed").contains("asha"))
    }
}
