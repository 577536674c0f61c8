import Histogram
import KoshQR

/// How long a QR code's PNG takes (issue 14: "rendered in well under a millisecond; cache it per
/// QR"): `images` distinct UPI intent links each encoded once (libqrencode, the PNG deflated by
/// zlib), then the same links again from a `QRImageCache` — what the checkout's and the QR Codes
/// API's image routes do. Microseconds per image.
public enum QRImageBenchmark {
    public struct Result: Sendable {
        public let images: Int
        public let bytes: Int
        public let encoded: Histogram<UInt64>
        public let cached: Histogram<UInt64>
    }

    public static func run(images: Int, moduleSize: Int = 8) throws -> Result {
        precondition(images > 0)
        let links = (0..<images).map { i in
            "upi://pay?pa=kosh.gateway%40oksbi&pn=Acme%20Stores&am=\(1 + i % 99_999).00&tr=pay_bench\(String(i, radix: 36))&cu=INR&tn=Order%20\(i)"
        }
        let cache = QRImageCache(capacity: images, moduleSize: moduleSize)
        var encoded = Histogram<UInt64>(highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: .three)
        var cached = Histogram<UInt64>(highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: .three)
        var bytes = 0
        let clock = ContinuousClock()
        for link in links {
            let started = clock.now
            let png = try cache.png(for: link)
            encoded.record(micros(clock.now - started))
            bytes += png.count
        }
        for link in links {
            let started = clock.now
            _ = try cache.png(for: link)
            cached.record(micros(clock.now - started))
        }
        return Result(images: images, bytes: bytes, encoded: encoded, cached: cached)
    }

    static func micros(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
    }
}
