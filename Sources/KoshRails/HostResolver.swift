#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import KoshCore
import NIOPosix

/// The system resolver (`getaddrinfo`: /etc/hosts, then DNS), run on a small thread pool of
/// its own so a slow lookup never blocks an event loop or the cooperative pool.
public struct SystemHostResolver: HostResolver {
    /// Four threads: lookups are rare (webhook create/update, and once a minute per host at delivery).
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        return pool
    }()

    public init() {}

    public func addresses(of host: String) async throws -> [NetworkAddress] {
        try await Self.pool.runIfActive { Self.lookUp(host) }
    }

    /// Every distinct TCP address of `host`; empty when it does not resolve (any error).
    static func lookUp(_ host: String) -> [NetworkAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Darwin)
        hints.ai_socktype = SOCK_STREAM
        #else
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var out: [NetworkAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let sockaddr = info.pointee.ai_addr {
                var address: NetworkAddress?
                switch Int32(info.pointee.ai_family) {
                case AF_INET:
                    address = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin_addr) { NetworkAddress(bytes: $0) }
                    }
                case AF_INET6:
                    address = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin6_addr) { NetworkAddress(bytes: $0) }
                    }
                default:
                    break
                }
                if let address, !out.contains(address) { out.append(address) }
            }
            cursor = info.pointee.ai_next
        }
        return out
    }
}
