import CQRencode

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How much of a QR symbol may be damaged and still read: about 7 %, 15 %, 25 % or 30 % of
/// its codewords. More correction makes a bigger symbol for the same text.
public enum QRErrorCorrection: Sendable, Hashable, CaseIterable {
    case low, medium, quartile, high

    var level: QRecLevel {
        switch self {
        case .low: QR_ECLEVEL_L
        case .medium: QR_ECLEVEL_M
        case .quartile: QR_ECLEVEL_Q
        case .high: QR_ECLEVEL_H
        }
    }
}

/// Why a QR code or its image was refused.
public struct QRCodeError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The text is empty.
        case emptyText
        /// The text is longer than `QRCode.maximumTextBytes` bytes of UTF-8.
        case textTooLong
        /// `moduleSize` is outside `QRCode.moduleSizes`.
        case moduleSizeOutOfRange
        /// `quietZone` is outside `QRCode.quietZones`.
        case quietZoneOutOfRange
        /// libqrencode failed (out of memory); not expected for text within the limit.
        case encodingFailed
        /// zlib failed (out of memory); not expected.
        case compressionFailed
    }

    public let code: Code
    public let description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// A QR code symbol (model 2, 8-bit byte mode), encoded by libqrencode: `size` × `size` modules,
/// without the quiet zone.
public struct QRCode: Sendable, Hashable {
    /// The most UTF-8 bytes `encode` accepts. Version 40 holds 1,273 bytes at `.high` correction
    /// (2,953 at `.low`), so any text within this limit encodes at every level; longer text is
    /// refused before libqrencode is called.
    public static let maximumTextBytes = 1_024

    /// The version (1...40): the symbol is 17 + 4 × version modules wide.
    public let version: Int
    /// Modules per side, without the quiet zone.
    public let size: Int
    /// One byte per module, row by row: 1 dark, 0 light.
    private let modules: [UInt8]

    /// Whether the module at column `x`, row `y` (both in 0..<size, from the top left) is dark.
    public func isDark(x: Int, y: Int) -> Bool {
        precondition((0..<size).contains(x) && (0..<size).contains(y),
                     "module (\(x), \(y)) is outside a \(size)×\(size) QR code")
        return modules[y * size + x] != 0
    }

    /// Encodes `text`'s UTF-8 bytes in 8-bit byte mode (case and every byte kept as they are)
    /// in the smallest version that holds them at `correction`.
    ///
    /// - Throws: `QRCodeError` `.emptyText`, `.textTooLong` (over `maximumTextBytes` bytes),
    ///   or `.encodingFailed`.
    public static func encode(_ text: String, correction: QRErrorCorrection = .medium) throws -> QRCode {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else {
            throw QRCodeError(.emptyText, "a QR code needs at least one byte of text")
        }
        guard bytes.count <= maximumTextBytes else {
            throw QRCodeError(.textTooLong,
                              "the text is \(bytes.count) bytes of UTF-8; a QR code here holds at most \(maximumTextBytes)")
        }
        // Version 0: the smallest version that fits. 8-bit mode only, no ECI header.
        let encoded = bytes.withUnsafeBufferPointer { buffer -> (symbol: UnsafeMutablePointer<CQRencode.QRcode>?, errno: Int32) in
            let symbol = QRcode_encodeData(Int32(buffer.count), buffer.baseAddress, 0, correction.level)
            return (symbol, symbol == nil ? errno : 0)
        }
        guard let symbol = encoded.symbol else {
            throw QRCodeError(.encodingFailed, "libqrencode could not encode \(bytes.count) bytes (errno \(encoded.errno))")
        }
        defer { QRcode_free(symbol) }

        let version = Int(symbol.pointee.version)
        let size = Int(symbol.pointee.width)
        guard (1...40).contains(version), size == 17 + 4 * version, let data = symbol.pointee.data else {
            throw QRCodeError(.encodingFailed,
                              "libqrencode returned an inconsistent symbol (version \(version), width \(size))")
        }
        // Bit 0 of each byte is the module's colour; the other bits say what the module is for.
        let modules = [UInt8](unsafeUninitializedCapacity: size * size) { buffer, count in
            for index in 0..<(size * size) {
                buffer[index] = data[index] & 1
            }
            count = size * size
        }
        return QRCode(version: version, size: size, modules: modules)
    }
}
