import KoshQR
import KoshTesting
import Testing

enum Texts {
    static let upiIntent = "upi://pay?pa=kosh.gateway%40oksbi&pn=Acme&am=250.00&tr=qr_ABC&cu=INR"
    static let mixedCase = "Hello, World! MiXeD cAsE 0123 ~`!@#$%^&*()_+-={}[]|\\:;\"'<>,.?/ tab\tline\nnul\u{0}end"
    static let nonASCII = "upi://pay?pa=chai%40okaxis&pn=चाय वाला&am=20.00&tn=₹20 for chai 🙏&cu=INR"
    /// A UPI intent whose note pads it to exactly `QRCode.maximumTextBytes` bytes.
    static let atTheLimit: String = {
        let start = "upi://pay?pa=kosh.gateway%40oksbi&pn=Acme&am=250.00&tr=qr_ABC&cu=INR&tn="
        return start + String(repeating: "Order-42.", count: 200).prefix(QRCode.maximumTextBytes - start.utf8.count)
    }()
    static let all = [
        Sample("a UPI intent", upiIntent), Sample("mixed case, punctuation and control bytes", mixedCase),
        Sample("Devanagari, ₹ and an emoji", nonASCII), Sample("a UPI intent of 1,024 bytes", atTheLimit),
    ]
}

/// A text with a short name for the test report (the texts themselves hold a NUL and 1,024 bytes).
struct Sample: CustomTestStringConvertible, Sendable {
    let name: String
    let text: String
    init(_ name: String, _ text: String) {
        self.name = name
        self.text = text
    }
    var testDescription: String { name }
}

@Suite("QR codes: libqrencode's symbols, the PNGs, read back with libpng and scanned with zbar")
struct QRCodeTests {
    @Test("the PNG scans back to the same bytes, at every correction level",
          arguments: Texts.all, QRErrorCorrection.allCases)
    func roundTrip(sample: Sample, correction: QRErrorCorrection) throws {
        let png = try QRCode.png(sample.text, correction: correction)
        let scanned = scanQRCodes(try readPNG(png))
        #expect(scanned == [Array(sample.text.utf8)])
    }

    @Test("non-ASCII text scans as itself when the scanner guesses the character set, as phones do")
    func nonASCIIAsText() throws {
        let scanned = scanQRCodes(try readPNG(try QRCode.png(Texts.nonASCII)), binary: false)
        #expect(scanned.map { String(decoding: $0, as: UTF8.self) } == [Texts.nonASCII])
    }

    @Test("small modules and quiet zones still scan", arguments: [(2, 4), (3, 1), (4, 0), (32, 16)])
    func smallAndLargeImages(moduleSize: Int, quietZone: Int) throws {
        let png = try QRCode.png(Texts.upiIntent, moduleSize: moduleSize, quietZone: quietZone)
        #expect(scanQRCodes(try readPNG(png)) == [Array(Texts.upiIntent.utf8)])
    }

    @Test("signature and IHDR: a 1-bit grayscale square of (size + 2 × quietZone) × moduleSize pixels",
          arguments: [(1, 0), (8, 4), (3, 1), (5, 3), (32, 16)])
    func header(moduleSize: Int, quietZone: Int) throws {
        let code = try QRCode.encode(Texts.upiIntent)
        let png = try code.png(moduleSize: moduleSize, quietZone: quietZone)
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let side = UInt32((code.size + 2 * quietZone) * moduleSize)
        let header = try PNGHeader(png)
        #expect(header.width == side && header.height == side)
        #expect(header.bitDepth == 1 && header.colorType == 0 && header.interlace == 0)
        #expect(Array(png.suffix(12)) == [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82])  // IEND
        #expect(try png == QRCode.png(Texts.upiIntent, moduleSize: moduleSize, quietZone: quietZone))
    }

    @Test("every pixel is the module under it: black for dark, white for light and the quiet zone",
          arguments: [(1, 0), (3, 2), (5, 4)])
    func pixels(moduleSize: Int, quietZone: Int) throws {
        let code = try QRCode.encode(Texts.upiIntent, correction: .quartile)
        let image = try readPNG(try code.png(moduleSize: moduleSize, quietZone: quietZone))
        let modulesPerSide = code.size + 2 * quietZone
        #expect(image.width == modulesPerSide * moduleSize && image.height == image.width)
        var wrong = 0
        for y in 0..<image.height {
            for x in 0..<image.width {
                let (moduleX, moduleY) = (x / moduleSize - quietZone, y / moduleSize - quietZone)
                let dark = (0..<code.size).contains(moduleX) && (0..<code.size).contains(moduleY)
                    && code.isDark(x: moduleX, y: moduleY)
                if image.pixel(x: x, y: y) != (dark ? 0 : 255) { wrong += 1 }
            }
        }
        #expect(wrong == 0)
    }

    @Test("the symbol: version and size, the three finder patterns, the timing patterns")
    func symbolStructure() throws {
        let code = try QRCode.encode(Texts.upiIntent)
        #expect((1...40).contains(code.version) && code.size == 17 + 4 * code.version)
        for (left, top) in [(0, 0), (code.size - 7, 0), (0, code.size - 7)] {
            for dy in 0..<7 {
                for dx in 0..<7 {
                    // Dark outer ring, light ring, dark 3×3 centre.
                    let ring = max(abs(dx - 3), abs(dy - 3))
                    #expect(code.isDark(x: left + dx, y: top + dy) == (ring != 2))
                }
            }
        }
        for i in 8..<(code.size - 8) {
            #expect(code.isDark(x: i, y: 6) == (i % 2 == 0))
            #expect(code.isDark(x: 6, y: i) == (i % 2 == 0))
        }
        #expect(try QRCode.encode("A").version == 1)
    }

    @Test("byte mode keeps case, and more correction never makes a smaller symbol")
    func caseAndCorrection() throws {
        #expect(try QRCode.encode("ACME") != QRCode.encode("acme"))
        #expect(try QRCode.encode(Texts.upiIntent) == QRCode.encode(Texts.upiIntent))
        let versions = try QRErrorCorrection.allCases.map { try QRCode.encode(Texts.atTheLimit, correction: $0).version }
        #expect(versions == versions.sorted() && versions.last! <= 40)
    }

    @Test("the limit is 1,024 bytes of UTF-8, not characters")
    func lengthLimit() throws {
        #expect(QRCode.maximumTextBytes == 1_024)
        #expect(Texts.atTheLimit.utf8.count == 1_024)
        _ = try QRCode.encode(Texts.atTheLimit, correction: .high)
        _ = try QRCode.encode(String(repeating: "₹", count: 341))  // 1,023 bytes

        for text in [Texts.atTheLimit + "x", String(repeating: "₹", count: 342), String(repeating: "a", count: 100_000)] {
            let error = #expect(throws: QRCodeError.self) { try QRCode.encode(text) }
            #expect(error?.code == .textTooLong)
            #expect(error?.description.contains("1024") == true)
            let pngError = #expect(throws: QRCodeError.self) { try QRCode.png(text) }
            #expect(pngError?.code == .textTooLong)
        }
        let empty = #expect(throws: QRCodeError.self) { try QRCode.png("") }
        #expect(empty?.code == .emptyText)
    }

    @Test("module sizes outside 1...32 and quiet zones outside 0...16 are refused",
          arguments: [(0, 4, QRCodeError.Code.moduleSizeOutOfRange), (-1, 4, .moduleSizeOutOfRange),
                      (33, 4, .moduleSizeOutOfRange), (Int.max, 4, .moduleSizeOutOfRange),
                      (8, -1, .quietZoneOutOfRange), (8, 17, .quietZoneOutOfRange),
                      (8, Int.min, .quietZoneOutOfRange)])
    func imageSizeLimits(moduleSize: Int, quietZone: Int, code: QRCodeError.Code) throws {
        let error = #expect(throws: QRCodeError.self) {
            try QRCode.png(Texts.upiIntent, moduleSize: moduleSize, quietZone: quietZone)
        }
        #expect(error?.code == code)
        let fromCode = #expect(throws: QRCodeError.self) {
            try QRCode.encode(Texts.upiIntent).png(moduleSize: moduleSize, quietZone: quietZone)
        }
        #expect(fromCode?.code == code)
        // Checked before the text: an over-long text with bad sizes is refused for the sizes.
        let first = #expect(throws: QRCodeError.self) {
            try QRCode.png(Texts.atTheLimit + "x", moduleSize: moduleSize, quietZone: quietZone)
        }
        #expect(first?.code == code)
    }
}
