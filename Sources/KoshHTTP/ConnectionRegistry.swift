import HummingbirdCore
import NIOCore
import Synchronization

/// Every open client connection of one server: the cap, and which connections are idle, so
/// that at the cap a new client can take the place of the connection idle the longest
/// instead of waiting (a server full of idle keep-alive connections still answers /healthz).
public final class ConnectionRegistry: Sendable {
    /// One open connection. Its idle mark changes twice a request, so it is an atomic of its
    /// own rather than a field behind the registry's lock (no lock shared by all connections
    /// on the request path).
    final class Slot: Sendable {
        let channel: any Channel
        /// Uptime in nanoseconds when the connection went idle; 0 while it serves a request.
        let idleSince = Atomic<UInt64>(0)
        let evicting = Atomic<Bool>(false)
        let openedAt = NIODeadline.now().uptimeNanoseconds

        init(channel: any Channel) { self.channel = channel }

        func setIdle(_ idle: Bool) {
            idleSince.store(idle ? max(1, NIODeadline.now().uptimeNanoseconds) : 0, ordering: .relaxed)
        }
    }

    struct State {
        var open = 0
        var slots: [ObjectIdentifier: Slot] = [:]
        var evicting = 0
        var evicted = 0
    }

    public let maximum: Int
    let state = Mutex(State())
    /// The listener is parked at the cap with no idle connection to close: the next
    /// connection to go idle is closed at once to make room (the listener is asked again
    /// only when a connection closes).
    let starving = Atomic<Bool>(false)

    public init(maximum: Int) {
        precondition(maximum > 0)
        self.maximum = maximum
    }

    /// Connections open now.
    public var openConnections: Int { state.withLock { $0.open } }
    /// Idle connections closed to make room for new ones, since start.
    public var evictedConnections: Int { state.withLock { $0.evicted } }

    func accepted() { ConnectionMetrics.open.record(state.withLock { $0.open += 1; return $0.open }) }
    func released() { ConnectionMetrics.open.record(state.withLock { $0.open -= 1; return $0.open }) }

    func register(_ channel: any Channel) -> Slot {
        let slot = Slot(channel: channel)
        slot.setIdle(true)
        state.withLock { $0.slots[ObjectIdentifier(channel)] = slot }
        return slot
    }

    func unregister(_ channel: any Channel) {
        state.withLock { state in
            if let slot = state.slots.removeValue(forKey: ObjectIdentifier(channel)), slot.evicting.load(ordering: .relaxed) {
                state.evicting -= 1
                state.evicted += 1
                ConnectionMetrics.evicted.increment()
            }
        }
    }

    /// Whether to accept another connection now. At the cap, closes the connection idle the
    /// longest (one at a time); the listener accepts again when it has closed. Only at the
    /// cap does this walk the connections.
    func admit() -> Bool {
        let victim: Slot? = state.withLock { state in
            if state.open < maximum { return nil }
            guard state.evicting == 0 else { return nil }
            var oldest: (slot: Slot, since: UInt64)?
            // A connection accepted within the last second counts as idle only after that:
            // its first request may not have been read yet (the listener asks again right
            // after every accept, and would otherwise close the newcomer it just let in).
            let newborn = NIODeadline.now().uptimeNanoseconds &- 1_000_000_000
            for slot in state.slots.values {
                let since = slot.idleSince.load(ordering: .relaxed)
                guard since != 0, slot.openedAt < newborn, !slot.evicting.load(ordering: .relaxed) else { continue }
                if oldest == nil || since < oldest!.since { oldest = (slot, since) }
            }
            guard let oldest else { return nil }
            oldest.slot.evicting.store(true, ordering: .relaxed)
            state.evicting += 1
            return oldest.slot
        }
        if let victim { evict(victim) }
        let admitted = state.withLock { $0.open < maximum }
        starving.store(!admitted && victim == nil, ordering: .relaxed)
        return admitted
    }

    /// Closes an idle connection on its own event loop, after checking there that it is
    /// still idle (a request may have arrived since it was chosen); if not, the eviction is
    /// called off and the next connection to go idle makes room instead.
    func evict(_ slot: Slot) {
        slot.channel.eventLoop.execute { [self] in
            if slot.idleSince.load(ordering: .relaxed) != 0 {
                slot.channel.close(promise: nil)
            } else {
                slot.evicting.store(false, ordering: .relaxed)
                state.withLock { $0.evicting -= 1 }
                starving.store(true, ordering: .relaxed)
            }
        }
    }

    /// While the listener is parked at the cap, asks it again four times a second: a
    /// connection that was too new to close, or busy, may be idle by now (otherwise the
    /// listener is asked only when a connection closes). Called once the server listens.
    public func watch(listener: any Channel) {
        listener.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) { [self] task in
            guard listener.isActive else { task.cancel(); return }
            if starving.load(ordering: .relaxed) { listener.read() }
        }
    }

    /// A connection went idle: if the listener is parked at the cap, this one makes room.
    func wentIdle(_ slot: Slot) {
        guard starving.load(ordering: .relaxed), slot.openedAt < NIODeadline.now().uptimeNanoseconds &- 1_000_000_000 else { return }
        let chosen = state.withLock { state -> Bool in
            guard state.evicting == 0, !slot.evicting.load(ordering: .relaxed) else { return false }
            slot.evicting.store(true, ordering: .relaxed)
            state.evicting += 1
            return true
        }
        if chosen {
            starving.store(false, ordering: .relaxed)
            slot.channel.close(promise: nil)
        }
    }
}

/// The listener's side of the cap: Hummingbird stops accepting while this says no.
struct RegistryAdmission: AvailableConnectionsDelegate {
    let registry: ConnectionRegistry
    mutating func connectionOpened() { registry.accepted() }
    mutating func connectionClosed() { registry.released() }
    func isAcceptingNewConnections() -> Bool { registry.admit() }
}
