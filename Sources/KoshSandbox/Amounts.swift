import KoshRandom

/// Money in the sandbox is integer paise. Betapay speaks rupee strings ("500.00"), converted
/// here with integer maths only.
enum Amounts {
    /// ₹1,00,000: the most one UPI transaction may carry (`Z8` above it).
    static let perTransactionLimit: Int64 = 10_000_000
    /// ₹1,00,000 a day per account (`Z7` above it).
    static let dailyLimit: Int64 = 10_000_000
    /// ₹2,00,000: a new account's balance.
    static let openingBalance: Int64 = 20_000_000
    /// The largest amount the APIs accept at all (₹1,000 crore); larger is a malformed request,
    /// smaller but over the limits is a bank decline.
    static let maximumAccepted: Int64 = 1_000_000_000_000

    static func isAcceptable(_ paise: Int64) -> Bool { paise >= 1 && paise <= maximumAccepted }

    /// "500.00" → 50000, "500" → 50000, "0.5" → 50. Nil for signs, spaces, exponents, more than
    /// two decimals, an empty part before or after the point, or more than 13 rupee digits.
    static func paise(fromRupees text: String) -> Int64? {
        let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else { return nil }
        let rupeeDigits = parts[0]
        let paiseDigits = parts.count == 2 ? parts[1] : rupeeDigits.suffix(0)
        guard !rupeeDigits.isEmpty, rupeeDigits.count <= 13, parts.count == 1 || !paiseDigits.isEmpty, paiseDigits.count <= 2
        else { return nil }
        func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        guard rupeeDigits.allSatisfy(isDigit), paiseDigits.allSatisfy(isDigit) else { return nil }
        var rupees: Int64 = 0
        for c in rupeeDigits { rupees = rupees * 10 + Int64(c - UInt8(ascii: "0")) }
        var fraction: Int64 = 0
        for c in paiseDigits { fraction = fraction * 10 + Int64(c - UInt8(ascii: "0")) }
        if paiseDigits.count == 1 { fraction *= 10 }
        return rupees * 100 + fraction
    }

    /// 50000 → "500.00", 5 → "0.05".
    static func rupees(fromPaise paise: Int64) -> String {
        precondition(paise >= 0, "negative amount \(paise)")
        let fraction = paise % 100
        return "\(paise / 100)." + (fraction < 10 ? "0" : "") + String(fraction)
    }

    /// `value × bps / 10000`, rounded half up (the gateway's fee rounding rule).
    static func share(_ value: Int64, basisPoints: Int64) -> Int64 {
        precondition(value >= 0 && value <= maximumAccepted && basisPoints >= 0 && basisPoints <= 10_000)
        return (value * basisPoints + 5_000) / 10_000
    }
}

/// The sandbox's draws from KoshRandom's SplitMix64, the one seeded source of every random
/// decision, so a seed replays the same faults for the same calls.
extension SplitMix64 {
    /// Uniform in [0, 1) from the top 53 bits.
    mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [0, bound) (Lemire's multiply-shift; the bias is below 2^-40 for our bounds).
    mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        return bound.multipliedFullWidth(by: next()).high
    }

    /// `true` with probability `rate`; draws only when the rate is above zero.
    mutating func chance(_ rate: Double) -> Bool {
        guard rate > 0 else { return false }
        return nextUnit() < rate
    }

    /// `count` decimal digits.
    mutating func digits(_ count: Int) -> String {
        precondition(count > 0 && count <= 18)
        var bound: UInt64 = 1
        for _ in 0..<count { bound *= 10 }
        let text = String(next(below: bound))
        return String(repeating: "0", count: count - text.count) + text
    }

    /// 16 lower-case hex digits.
    mutating func hex16() -> String {
        let text = String(next(), radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}
