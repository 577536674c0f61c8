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
        let body = OutboxEvent.body(accountID: "mer_1", name: .paymentCaptured, entities: [
            ("payment", .object([("id", .string("pay_1")), ("amount", .int(50_000)), ("currency", .string("INR")),
                                 ("email", .string("gaurav.kumar@example.com")), ("contact", .string("9123456789"))])),
        ], createdAt: 1)
        let event = OutboxEvent(id: "evt_1", merchantID: "mer_1", name: .paymentCaptured, body: body, createdAt: 1)
        let plan = NotificationTemplates.plan(event, merchantEmail: "ops@merchant.example")
        #expect(plan.map(\.channel) == [.email, .sms, .push, .email])
        #expect(plan.map(\.recipient) == ["gaurav.kumar@example.com", "9123456789", "9123456789", "ops@merchant.example"])
        #expect(plan[0].subject == "Payment of INR 500.00 successful")
        #expect(NotificationTemplates.plan(event, merchantEmail: nil).count == 3)
        let authorized = OutboxEvent(id: "evt_2", merchantID: "mer_1", name: .paymentAuthorized, body: body, createdAt: 1)
        #expect(NotificationTemplates.plan(authorized, merchantEmail: "ops@merchant.example").isEmpty)
    }

    @Test("an @ that a modifier joins to the next character still splits an address")
    func joinedAt() {
        let address = "asha@\u{1F3FB}example.com"
        #expect(Masking.recipient(address) == "as***@\u{1F3FB}example.com")
        #expect(!Masking.text("mail to \(address) failed").contains("asha"))
    }
}
