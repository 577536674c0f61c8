import CPNG
import CZBar
import Synchronization

/// Test readers of QR codes (moved from KoshQRTests so the API tests decode served images too).
/// A PNG read back by libpng's simplified API, converted to 8-bit gray (0 black, 255 white).
public struct GrayImage: Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public func pixel(x: Int, y: Int) -> UInt8 { pixels[y * width + x] }
}

public struct ReadError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Decodes `png` with libpng (which checks every chunk's CRC and the zlib stream).
public func readPNG(_ png: [UInt8]) throws -> GrayImage {
    // libpng keeps a pointer to the png_image between the calls: it must not move.
    let image = UnsafeMutablePointer<png_image>.allocate(capacity: 1)
    image.initialize(to: png_image())
    defer {
        png_image_free(image)
        image.deinitialize(count: 1)
        image.deallocate()
    }
    image.pointee.version = UInt32(PNG_IMAGE_VERSION)
    func message() -> String {
        withUnsafeBytes(of: image.pointee.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    return try png.withUnsafeBytes { bytes in
        guard png_image_begin_read_from_memory(image, bytes.baseAddress, bytes.count) != 0 else {
            throw ReadError(description: "libpng: \(message())")
        }
        image.pointee.format = UInt32(PNG_FORMAT_GRAY)
        let width = Int(image.pointee.width)
        let height = Int(image.pointee.height)
        var pixels = [UInt8](repeating: 0x55, count: width * height)
        let finished = pixels.withUnsafeMutableBytes { buffer in
            png_image_finish_read(image, nil, buffer.baseAddress, Int32(width), nil)
        }
        guard finished != 0 else {
            throw ReadError(description: "libpng: \(message())")
        }
        return GrayImage(width: width, height: height, pixels: pixels)
    }
}

/// The header fields of a PNG's IHDR, read from the bytes (not through libpng).
public struct PNGHeader: Equatable {
    public var width: UInt32
    public var height: UInt32
    public var bitDepth: UInt8
    public var colorType: UInt8
    public var interlace: UInt8

    public init(_ png: [UInt8]) throws {
        guard png.count >= 33, Array(png[12..<16]) == Array("IHDR".utf8) else {
            throw ReadError(description: "no IHDR chunk first")
        }
        func word(_ at: Int) -> UInt32 {
            png[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) }
        }
        width = word(16)
        height = word(20)
        bitDepth = png[24]
        colorType = png[25]
        interlace = png[28]
    }
}

/// zbar's state is not documented as thread-safe across scanners; the tests run in parallel.
private let zbarLock = Mutex(())

/// Every QR code zbar finds in `image`, as the raw bytes of its data (ZBAR_CFG_BINARY: no
/// guessing of a character set) or, with `binary: false`, as zbar's text (it guesses the
/// character set, as a phone's scanner does, since the codes carry no ECI).
public func scanQRCodes(_ image: GrayImage, binary: Bool = true) -> [[UInt8]] {
    zbarLock.withLock { _ in
        guard let scanner = zbar_image_scanner_create() else { return [] }
        defer { zbar_image_scanner_destroy(scanner) }
        zbar_image_scanner_set_config(scanner, ZBAR_NONE, ZBAR_CFG_ENABLE, 0)
        zbar_image_scanner_set_config(scanner, ZBAR_QRCODE, ZBAR_CFG_ENABLE, 1)
        zbar_image_scanner_set_config(scanner, ZBAR_QRCODE, ZBAR_CFG_BINARY, binary ? 1 : 0)
        guard let zimage = zbar_image_create() else { return [] }
        defer { zbar_image_destroy(zimage) }
        // Y800: 8-bit gray, one byte a pixel.
        let y800 = UInt(UInt8(ascii: "Y")) | UInt(UInt8(ascii: "8")) << 8
            | UInt(UInt8(ascii: "0")) << 16 | UInt(UInt8(ascii: "0")) << 24
        zbar_image_set_format(zimage, y800)
        zbar_image_set_size(zimage, UInt32(image.width), UInt32(image.height))
        return image.pixels.withUnsafeBytes { pixels in
            // No cleanup handler: zbar borrows the pixels only while scanning.
            zbar_image_set_data(zimage, pixels.baseAddress, UInt(pixels.count), nil)
            defer { zbar_image_set_data(zimage, nil, 0, nil) }
            guard zbar_scan_image(scanner, zimage) > 0 else { return [] }
            var found: [[UInt8]] = []
            var symbol = zbar_image_first_symbol(zimage)
            while let current = symbol {
                if zbar_symbol_get_type(current) == ZBAR_QRCODE, let data = zbar_symbol_get_data(current) {
                    let length = Int(zbar_symbol_get_data_length(current))
                    found.append(data.withMemoryRebound(to: UInt8.self, capacity: length) {
                        Array(UnsafeBufferPointer(start: $0, count: length))
                    })
                }
                symbol = zbar_symbol_next(current)
            }
            return found
        }
    }
}
