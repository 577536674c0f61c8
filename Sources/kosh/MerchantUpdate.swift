import ArgumentParser
import KoshApp
import KoshCore
import KoshJSON

extension MerchantCommand {
    /// `kosh merchant update`: the merchant's checkout settings. Running servers see them within
    /// 30 s (their key cache's lifetime).
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "update",
            abstract: "Change a merchant's checkout settings; prints them as JSON. Running servers see the change within 30 s.")
        @OptionGroup var target: MerchantTarget
        @Option(name: .customLong("checkout-origin"), help: """
            An origin (https://shop.example) the hosted checkout may send the customer back to, repeatable, at most \
            \(CheckoutSettings.maximumOrigins); replaces the merchant's list. --checkout-origin none clears it.
            """)
        var checkoutOrigins: [String] = []
        @Option(name: .customLong("upi-collect"), help: "on: offer UPI collect on the checkout page; off: QR and intent only.")
        var upiCollect: String?

        func validate() throws {
            guard !checkoutOrigins.isEmpty || upiCollect != nil else {
                throw ValidationError("nothing to change: give --checkout-origin or --upi-collect")
            }
            guard checkoutOrigins.count <= CheckoutSettings.maximumOrigins else {
                throw ValidationError("--checkout-origin: at most \(CheckoutSettings.maximumOrigins)")
            }
            for origin in checkoutOrigins where origin != "none" && CheckoutSettings.origin(of: origin) == nil {
                throw ValidationError("--checkout-origin \(origin): an http or https origin such as https://shop.example")
            }
            if let upiCollect, upiCollect != "on" && upiCollect != "off" { throw ValidationError("--upi-collect must be on or off") }
        }

        func run() async throws {
            try await target.with { services, merchant in
                var settings = merchant.checkout
                if !checkoutOrigins.isEmpty {
                    settings.origins = checkoutOrigins == ["none"] ? [] : checkoutOrigins.compactMap(CheckoutSettings.origin(of:))
                }
                if let upiCollect { settings.upiCollect = upiCollect == "on" }
                guard let updated = try await services.merchants.updateCheckout(merchantID: merchant.id, settings) else {
                    throw ValidationError("no merchant \(merchant.id.rawValue)")
                }
                print(JSON.object([
                    ("merchant_id", .string(updated.id.rawValue)),
                    ("checkout_origins", .array(updated.checkout.origins.map(JSON.string))),
                    ("upi_collect", .bool(updated.checkout.upiCollect)),
                ]).serialized())
            }
        }
    }
}
