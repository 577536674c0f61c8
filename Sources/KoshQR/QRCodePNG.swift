import CZlib

extension QRCode {
    /// Pixels per module that `png` accepts.
    public static let moduleSizes = 1...32
    /// Modules of white border per side that `png` accepts (scanners expect 4).
    public static let quietZones = 0...16

    /// A PNG of `text`'s QR code: see `encode` and `png(moduleSize:quietZone:)`.
    ///
    /// - Throws: `QRCodeError` (the sizes are checked before the text is encoded).
    public static func png(
        _ text: String, moduleSize: Int = 8, quietZone: Int = 4, correction: QRErrorCorrection = .medium
    ) throws -> [UInt8] {
        try checkImageSizes(moduleSize: moduleSize, quietZone: quietZone)
        return try encode(text, correction: correction).png(moduleSize: moduleSize, quietZone: quietZone)
    }

    /// This code as a 1-bit grayscale PNG, black on white, non-interlaced: each module is
    /// `moduleSize` × `moduleSize` pixels, with `quietZone` light modules around the symbol, so
    /// the image is (size + 2 × quietZone) × moduleSize pixels square.
    ///
    /// - Throws: `QRCodeError` `.moduleSizeOutOfRange`, `.quietZoneOutOfRange`, `.compressionFailed`.
    public func png(moduleSize: Int = 8, quietZone: Int = 4) throws -> [UInt8] {
        try Self.checkImageSizes(moduleSize: moduleSize, quietZone: quietZone)
        let modulesPerSide = size + 2 * quietZone
        let side = modulesPerSide * moduleSize  // at most (177 + 32) × 32 = 6,688 pixels

        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header: [UInt8] = []
        header.appendBigEndian(UInt32(side))  // width
        header.appendBigEndian(UInt32(side))  // height
        // Bit depth 1, colour type 0 (grayscale), deflate, adaptive filtering, no interlace.
        header += [1, 0, 0, 0, 0]
        png.appendChunk("IHDR", header)

        // The scanlines, each a filter byte then the row packed 8 pixels a byte, most significant
        // bit first, 0 black and 1 white. The first pixel row of a module row is written as it
        // is (filter 0, none); the moduleSize - 1 rows under it are the same, so they are written
        // with filter 2 (up: the difference from the row above), which is all zeros.
        let rowBytes = (side + 7) / 8
        var row = [UInt8](repeating: 0, count: 1 + rowBytes)
        var sameAsAbove = [UInt8](repeating: 0, count: 1 + rowBytes)
        sameAsAbove[0] = 2
        // Level 1 (Z_BEST_SPEED): for a UPI intent at the default sizes, about 0.07 ms and 850
        // bytes, against 0.3 ms and 610 bytes at zlib's default level 6.
        var deflater = try Deflater(level: Z_BEST_SPEED, strategy: Z_DEFAULT_STRATEGY)
        for moduleY in -quietZone..<(size + quietZone) {
            for byte in 1...rowBytes { row[byte] = 0xFF }
            if (0..<size).contains(moduleY) {
                for moduleX in 0..<size where isDark(x: moduleX, y: moduleY) {
                    let firstPixel = (moduleX + quietZone) * moduleSize
                    for pixel in firstPixel..<(firstPixel + moduleSize) {
                        row[1 + pixel / 8] &= ~(0x80 >> UInt8(pixel % 8))
                    }
                }
            }
            try deflater.add(row)
            for _ in 1..<moduleSize {
                try deflater.add(sameAsAbove)
            }
        }
        png.appendChunk("IDAT", try deflater.finish())
        png.appendChunk("IEND", [])
        return png
    }

    static func checkImageSizes(moduleSize: Int, quietZone: Int) throws {
        guard moduleSizes.contains(moduleSize) else {
            throw QRCodeError(.moduleSizeOutOfRange,
                              "moduleSize \(moduleSize) is outside \(moduleSizes.lowerBound)...\(moduleSizes.upperBound) pixels")
        }
        guard quietZones.contains(quietZone) else {
            throw QRCodeError(.quietZoneOutOfRange,
                              "quietZone \(quietZone) is outside \(quietZones.lowerBound)...\(quietZones.upperBound) modules")
        }
    }
}

extension [UInt8] {
    fileprivate mutating func appendBigEndian(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    /// A PNG chunk: length, type, data, then the CRC-32 (zlib's) of type and data.
    fileprivate mutating func appendChunk(_ type: StaticString, _ data: [UInt8]) {
        precondition(type.utf8CodeUnitCount == 4 && data.count <= Int(Int32.max))
        appendBigEndian(UInt32(data.count))
        let typeStart = count
        append(contentsOf: UnsafeBufferPointer(start: type.utf8Start, count: 4))
        append(contentsOf: data)
        let crc = self[typeStart...].withUnsafeBufferPointer { bytes in
            crc32(0, bytes.baseAddress, uInt(bytes.count))
        }
        appendBigEndian(UInt32(truncatingIfNeeded: crc))
    }
}

/// A zlib stream fed a row at a time; `deinit` frees zlib's state on every path, errors
/// included. The z_stream lives on the heap because zlib checks that it does not move.
private struct Deflater: ~Copyable {
    private let stream: UnsafeMutablePointer<z_stream>
    private var output: [UInt8] = []
    private var scratch = [UInt8](repeating: 0, count: 16 * 1_024)

    init(level: Int32, strategy: Int32) throws {
        // self.stream is set last: a throw before it does not run deinit.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())  // zalloc, zfree and opaque nil: malloc and free
        let status = kosh_deflate_init(stream, level, strategy)
        guard status == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw QRCodeError(.compressionFailed, "zlib's deflateInit failed (\(status))")
        }
        self.stream = stream
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    mutating func add(_ bytes: [UInt8]) throws {
        try run(bytes, flush: Z_NO_FLUSH)
    }

    consuming func finish() throws -> [UInt8] {
        try run([], flush: Z_FINISH)
        return output
    }

    /// Deflates all of `input`; with Z_FINISH, until the stream's end.
    private mutating func run(_ input: [UInt8], flush: Int32) throws {
        let stream = self.stream
        var done = false
        try input.withUnsafeBufferPointer { input in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.pointee.avail_in = uInt(input.count)
            defer {
                stream.pointee.next_in = nil
                stream.pointee.avail_in = 0
            }
            while !done {
                let (status, produced) = scratch.withUnsafeMutableBufferPointer { scratch in
                    stream.pointee.next_out = scratch.baseAddress
                    stream.pointee.avail_out = uInt(scratch.count)
                    let status = deflate(stream, flush)
                    stream.pointee.next_out = nil
                    return (status, scratch.count - Int(stream.pointee.avail_out))
                }
                output.append(contentsOf: scratch[..<produced])
                switch status {
                case Z_STREAM_END:
                    done = true
                case Z_OK, Z_BUF_ERROR:
                    // Z_BUF_ERROR: no progress possible, i.e. all input taken and no output pending.
                    if flush == Z_NO_FLUSH && stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 {
                        done = true
                    } else if status == Z_BUF_ERROR {
                        throw QRCodeError(.compressionFailed, "zlib's deflate made no progress")
                    }
                default:
                    throw QRCodeError(.compressionFailed, "zlib's deflate failed (\(status))")
                }
            }
        }
    }
}
