extension SQLStoreTransaction {
    /// `fee_rates`: `key=bps` pairs, comma-separated (`card:amex=250,upi=0`).
    static func feeRates(_ text: String?) -> [String: Int64] {
        var rates: [String: Int64] = [:]
        for pair in (text ?? "").split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, let value = Int64(parts[1]) { rates[String(parts[0])] = value }
        }
        return rates
    }

    static func feeRatesText(_ rates: [String: Int64]) -> String {
        rates.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
