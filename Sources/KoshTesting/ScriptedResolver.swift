import KoshCore
import Synchronization

/// A resolver that answers from a table the test controls (and can change between calls, to
/// play a rebinding DNS server); names not in it do not resolve. Counts lookups per name.
public final class ScriptedResolver: HostResolver {
    struct State {
        var answers: [String: [NetworkAddress]]
        var lookups: [String: Int] = [:]
    }
    let state: Mutex<State>

    /// `example.com` and `hooks.example.com` resolve to 93.184.215.14, a public address that no
    /// test connects to.
    public static let publicAddress = NetworkAddress.ipv4(93, 184, 215, 14)

    public init(_ answers: [String: [NetworkAddress]] = ["example.com": [ScriptedResolver.publicAddress],
                                                          "hooks.example.com": [ScriptedResolver.publicAddress]]) {
        state = Mutex(State(answers: answers))
    }

    public func answer(_ host: String, with addresses: [NetworkAddress]) {
        state.withLock { $0.answers[host.lowercased()] = addresses }
    }

    public func lookups(of host: String) -> Int { state.withLock { $0.lookups[host.lowercased(), default: 0] } }

    public func addresses(of host: String) async throws -> [NetworkAddress] {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        return state.withLock { state in
            state.lookups[name, default: 0] += 1
            return state.answers[name] ?? []
        }
    }
}
