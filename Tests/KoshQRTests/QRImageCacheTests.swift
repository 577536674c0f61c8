import KoshQR
import KoshTesting
import Testing

@Suite("QRImageCache: the same bytes from memory, never more than its capacity")
struct QRImageCacheTests {
    @Test("a repeated text is served from memory, byte for byte what QRCode.png makes")
    func repeated() throws {
        let cache = QRImageCache(capacity: 4, moduleSize: 6, quietZone: 2, correction: .high)
        let first = try cache.png(for: Texts.upiIntent)
        #expect(first == (try QRCode.png(Texts.upiIntent, moduleSize: 6, quietZone: 2, correction: .high)))
        for _ in 0..<3 {
            #expect(try cache.png(for: Texts.upiIntent) == first)
        }
        #expect(cache.statistics == (hits: 3, misses: 1))
        #expect(cache.count == 1)
        #expect(scanQRCodes(try readPNG(first)) == [Array(Texts.upiIntent.utf8)])
    }

    @Test("it holds at most its capacity")
    func bounded() throws {
        let cache = QRImageCache(capacity: 8)
        for i in 0..<50 {
            _ = try cache.png(for: "upi://pay?pa=m\(i)%40oksbi&am=1.00")
            #expect(cache.count == min(i + 1, 8))
        }
        #expect(cache.statistics == (hits: 0, misses: 50))
    }

    @Test("the least recently used image goes first")
    func leastRecentlyUsed() throws {
        let cache = QRImageCache(capacity: 2)
        _ = try cache.png(for: "a")  // miss: [a]
        _ = try cache.png(for: "b")  // miss: [b, a]
        _ = try cache.png(for: "a")  // hit:  [a, b]
        _ = try cache.png(for: "c")  // miss: [c, a], b evicted
        #expect(cache.statistics == (hits: 1, misses: 3))
        _ = try cache.png(for: "a")  // hit:  [a, c]
        #expect(cache.statistics == (hits: 2, misses: 3))
        _ = try cache.png(for: "b")  // miss: [b, a], c evicted
        _ = try cache.png(for: "a")  // hit
        _ = try cache.png(for: "c")  // miss
        #expect(cache.statistics == (hits: 3, misses: 5))
        #expect(cache.count == 2)
    }

    @Test("refusals pass through and are not stored")
    func refusals() throws {
        let cache = QRImageCache(capacity: 2)
        let tooLong = #expect(throws: QRCodeError.self) { try cache.png(for: Texts.atTheLimit + "x") }
        #expect(tooLong?.code == .textTooLong)
        #expect(cache.count == 0)
        let badSize = QRImageCache(moduleSize: 0)
        let refused = #expect(throws: QRCodeError.self) { try badSize.png(for: Texts.upiIntent) }
        #expect(refused?.code == .moduleSizeOutOfRange)
        #expect(badSize.count == 0)
    }

    @Test("many tasks at once: every answer right, the bound kept", .timeLimit(.minutes(1)))
    func concurrent() async throws {
        let cache = QRImageCache(capacity: 4)
        let texts = (0..<10).map { "upi://pay?pa=shop\($0)%40oksbi&pn=Shop&am=\($0).00&cu=INR" }
        let expected = try Dictionary(uniqueKeysWithValues: texts.map { ($0, try QRCode.png($0)) })
        let wrong = try await withThrowingTaskGroup(of: Bool.self) { group in
            for round in 0..<200 {
                let text = texts[(round * 7) % texts.count]
                group.addTask { try cache.png(for: text) == expected[text] }
            }
            return try await group.reduce(0) { $0 + ($1 ? 0 : 1) }
        }
        #expect(wrong == 0)
        #expect(cache.count <= 4)
        let statistics = cache.statistics
        #expect(statistics.hits + statistics.misses == 200)
    }
}
