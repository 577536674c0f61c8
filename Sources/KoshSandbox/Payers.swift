/// A payer's virtual payment address, `local@handle`, at one of the known banks.
struct VPA: Sendable, Hashable {
    /// Lower-cased `local@handle`.
    let address: String
    let local: String
    let handle: String

    static let banks: [String: String] = [
        "okhdfcbank": "HDFC Bank",
        "ybl": "Yes Bank (PhonePe)",
        "paytm": "Paytm Payments Bank",
        "okicici": "ICICI Bank",
        "oksbi": "State Bank of India",
    ]

    var bank: String { Self.banks[handle]! }

    /// Nil unless the lower-cased text matches `^[a-z0-9.\-_]{2,64}@[a-z]{2,32}$` with a known handle.
    init?(_ text: String) {
        guard text.utf8.count <= 97 else { return nil }
        let lowered = text.lowercased()
        let parts = lowered.utf8.split(separator: UInt8(ascii: "@"), omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let local = parts[0], handle = parts[1]
        func isLocal(_ c: UInt8) -> Bool {
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
        }
        guard (2...64).contains(local.count), local.allSatisfy(isLocal),
              (2...32).contains(handle.count), handle.allSatisfy({ $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }),
              let localText = String(local), let handleText = String(handle), Self.banks[handleText] != nil
        else { return nil }
        self.address = lowered
        self.local = localText
        self.handle = handleText
    }

    /// The local part title-cased: `success.asha` → `Success Asha`.
    var payerName: String {
        local.split(whereSeparator: { $0 == "." || $0 == "-" || $0 == "_" })
            .map { $0.prefix(1).uppercased() + $0.dropFirst() }
            .joined(separator: " ")
    }

    var behaviour: PayerBehaviour {
        if local.hasPrefix("success") { return .approve }
        if local.hasPrefix("failure") { return .decline }
        if local.hasPrefix("timeout") { return .ignore }
        if local.hasPrefix("late") { return .approveLate }
        if local.hasPrefix("poor") { return .approveWithoutFunds }
        return .approve
    }
}

/// What the payer's app and bank do with a collect request (docs/SANDBOX.md).
enum PayerBehaviour: Sendable, Equatable {
    /// Approves after `payer_delay_ms`.
    case approve
    /// Declines after `payer_delay_ms` (ZA).
    case decline
    /// Never answers; the request expires (U69).
    case ignore
    /// Approves after `late_delay_ms`.
    case approveLate
    /// Approves after `payer_delay_ms`, but the bank finds no money (Z9).
    case approveWithoutFunds
}
