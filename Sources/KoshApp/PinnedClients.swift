import AsyncHTTPClient
import KoshCore
import Synchronization

/// HTTP clients that connect a host name only to the address Kosh checked for it
/// (AsyncHTTPClient's `dnsOverride`, which keeps the Host header, SNI and certificate checks on
/// the name), so DNS cannot switch a webhook to a private address between the check and the
/// connection. `dnsOverride` is per client, so there is one client per (host, checked address):
/// at most `capacity` of them, each trusted for `ttl` before its host is looked up again. A
/// client replaced or evicted is shut down once its last request is done.
final class PinnedClients: Sendable {
    /// A client handed out for one request; give it back with `release`.
    struct Lease: Sendable {
        let client: HTTPClient
        let id: ObjectIdentifier
    }

    struct Pin {
        let address: NetworkAddress
        let id: ObjectIdentifier
        var checkedAt: ContinuousClock.Instant
        var usedAt: ContinuousClock.Instant
    }

    struct Holder {
        let client: HTTPClient
        var inFlight = 0
        var retired = false
    }

    struct State {
        var pins: [String: Pin] = [:]
        var clients: [ObjectIdentifier: Holder] = [:]
        var closed = false
    }

    let capacity: Int
    let ttl: Duration
    let makeClient: @Sendable ([String: String]) -> HTTPClient
    /// The time a check is dated by (tests step it).
    let now: @Sendable () -> ContinuousClock.Instant
    let state = Mutex(State())

    init(capacity: Int, ttl: Duration, now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
         makeClient: @escaping @Sendable ([String: String]) -> HTTPClient) {
        precondition(capacity >= 1, "at least one pinned client")
        self.capacity = capacity
        self.ttl = ttl
        self.now = now
        self.makeClient = makeClient
    }

    /// The client pinned for `host` when its check is younger than the TTL.
    func fresh(host: String) -> Lease? {
        let now = self.now()
        return state.withLock { state -> Lease? in
            guard !state.closed, var pin = state.pins[host], pin.checkedAt.duration(to: now) < ttl,
                  let holder = state.clients[pin.id] else { return nil }
            pin.usedAt = now
            state.pins[host] = pin
            state.clients[pin.id]!.inFlight += 1
            return Lease(client: holder.client, id: pin.id)
        }
    }

    /// The client that connects `host` to `address` (checked just now): the pinned one when the
    /// address is unchanged, else a new one. Nil after `shutdown`.
    func pin(host: String, address: NetworkAddress) -> Lease? {
        let now = self.now()
        var doomed: [HTTPClient] = []
        let lease = state.withLock { state -> Lease? in
            guard !state.closed else { return nil }
            if var pin = state.pins[host], pin.address == address, state.clients[pin.id] != nil {
                pin.checkedAt = now
                pin.usedAt = now
                state.pins[host] = pin
                state.clients[pin.id]!.inFlight += 1
                return Lease(client: state.clients[pin.id]!.client, id: pin.id)
            }
            if let old = state.pins.removeValue(forKey: host) { doomed += Self.retire(old.id, in: &state) }
            while state.pins.count >= capacity, let oldest = state.pins.min(by: { $0.value.usedAt < $1.value.usedAt }) {
                state.pins.removeValue(forKey: oldest.key)
                doomed += Self.retire(oldest.value.id, in: &state)
            }
            // The name as written and in lower case: the client looks up the host as it parsed it.
            var overrides = [host: address.description]
            overrides[host.lowercased()] = address.description
            let client = makeClient(overrides)
            let id = ObjectIdentifier(client)
            state.clients[id] = Holder(client: client, inFlight: 1)
            state.pins[host] = Pin(address: address, id: id, checkedAt: now, usedAt: now)
            return Lease(client: client, id: id)
        }
        shutDown(doomed)
        return lease
    }

    func release(_ lease: Lease) {
        let doomed = state.withLock { state -> [HTTPClient] in
            guard var holder = state.clients[lease.id] else { return [] }
            holder.inFlight -= 1
            precondition(holder.inFlight >= 0, "a pinned client released more often than leased")
            if holder.retired && holder.inFlight == 0 {
                state.clients.removeValue(forKey: lease.id)
                return [holder.client]
            }
            state.clients[lease.id] = holder
            return []
        }
        shutDown(doomed)
    }

    /// How many clients exist (pinned or retired but still busy); tests.
    var count: Int { state.withLock { $0.clients.count } }

    /// Shuts every client down; later `pin` calls get nil.
    func shutdown() async {
        let all = state.withLock { state -> [HTTPClient] in
            state.closed = true
            state.pins = [:]
            defer { state.clients = [:] }
            return state.clients.values.map(\.client)
        }
        for client in all { try? await client.shutdown() }
    }

    /// Marks a client retired; returns it when no request holds it (to shut down now).
    static func retire(_ id: ObjectIdentifier, in state: inout State) -> [HTTPClient] {
        guard var holder = state.clients[id] else { return [] }
        if holder.inFlight == 0 {
            state.clients.removeValue(forKey: id)
            return [holder.client]
        }
        holder.retired = true
        state.clients[id] = holder
        return []
    }

    func shutDown(_ clients: [HTTPClient]) {
        for client in clients { Task { try? await client.shutdown() } }
    }
}
