import KoshCore
import KoshJSON

extension Notes {
    /// Parses notes stored by `storageText`.
    init(storageText: String) {
        guard case .object(let pairs)? = try? JSON.parse(storageText) else {
            self.init()
            return
        }
        self.init(pairs.compactMap { pair in
            if case .string(let value) = pair.1 { return (key: pair.0, value: value) }
            return nil
        })
    }

    /// Notes as stored: a JSON object, keys in the order given.
    var storageText: String {
        JSON.object(pairs.map { ($0.key, .string($0.value)) }).serialized()
    }
}
