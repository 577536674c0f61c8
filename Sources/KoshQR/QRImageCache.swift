import Synchronization

/// PNGs of QR codes by text, least recently used evicted first, at most `capacity` of them, so a
/// QR shown again (a checkout page reloaded, a fixed merchant QR) is served from memory. Every
/// image in one cache has the same module size, quiet zone and correction.
///
/// Thread-safe. The lock is held only to look up or store, never while encoding: two callers
/// missing the same text at once both encode it (the images are identical).
public final class QRImageCache: Sendable {
    public let capacity: Int
    public let moduleSize: Int
    public let quietZone: Int
    public let correction: QRErrorCorrection
    private let state: Mutex<LRU>

    /// - Parameters:
    ///   - capacity: the most images kept, at least 1. Each text is at most
    ///     `QRCode.maximumTextBytes` bytes and, at the default sizes, its PNG a few kilobytes.
    ///   - moduleSize, quietZone: as in `QRCode.png`; out of range, every `png(for:)` throws.
    public init(capacity: Int = 1_024, moduleSize: Int = 8, quietZone: Int = 4,
                correction: QRErrorCorrection = .medium) {
        precondition(capacity >= 1, "a QRImageCache holds at least one image")
        self.capacity = capacity
        self.moduleSize = moduleSize
        self.quietZone = quietZone
        self.correction = correction
        state = Mutex(LRU(capacity: capacity))
    }

    /// `QRCode.png(text, …)` with this cache's sizes, from memory when it was made before.
    /// Errors are thrown as `QRCode.png` throws them, and nothing is stored for them.
    public func png(for text: String) throws -> [UInt8] {
        if let image = state.withLock({ $0.lookUp(text) }) {
            return image
        }
        let image = try QRCode.png(text, moduleSize: moduleSize, quietZone: quietZone, correction: correction)
        state.withLock { $0.store(image, for: text) }
        return image
    }

    /// How many images are held (never more than `capacity`).
    public var count: Int { state.withLock { $0.count } }

    /// Lookups answered from memory, and those that had to encode.
    public var statistics: (hits: Int, misses: Int) {
        state.withLock { ($0.hits, $0.misses) }
    }
}

/// A fixed-size LRU: entries in an array, linked most recently used first by index, and a
/// dictionary from key to index. Every operation is O(1).
private struct LRU {
    private struct Entry {
        var key: String
        var image: [UInt8]
        var newer: Int?
        var older: Int?
    }

    private let capacity: Int
    private var entries: [Entry] = []
    private var index: [String: Int] = [:]
    private var newest: Int?
    private var oldest: Int?
    private(set) var hits = 0
    private(set) var misses = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    var count: Int { entries.count }

    mutating func lookUp(_ key: String) -> [UInt8]? {
        guard let position = index[key] else {
            misses += 1
            return nil
        }
        hits += 1
        moveToFront(position)
        return entries[position].image
    }

    mutating func store(_ image: [UInt8], for key: String) {
        if let position = index[key] {  // stored meanwhile by another caller
            entries[position].image = image
            moveToFront(position)
            return
        }
        let position: Int
        if entries.count < capacity {
            position = entries.count
            entries.append(Entry(key: key, image: image))
        } else {
            // Reuse the least recently used slot.
            position = oldest!
            unlink(position)
            index[entries[position].key] = nil
            entries[position] = Entry(key: key, image: image)
        }
        index[key] = position
        linkAtFront(position)
        assert(index.count == entries.count && entries.count <= capacity)
    }

    private mutating func moveToFront(_ position: Int) {
        guard newest != position else { return }
        unlink(position)
        linkAtFront(position)
    }

    private mutating func unlink(_ position: Int) {
        let (newer, older) = (entries[position].newer, entries[position].older)
        if let newer { entries[newer].older = older } else { newest = older }
        if let older { entries[older].newer = newer } else { oldest = newer }
        entries[position].newer = nil
        entries[position].older = nil
    }

    private mutating func linkAtFront(_ position: Int) {
        entries[position].older = newest
        entries[position].newer = nil
        if let newest { entries[newest].newer = position }
        newest = position
        if oldest == nil { oldest = position }
    }
}
