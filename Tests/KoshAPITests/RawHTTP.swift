import Foundation

/// A plain TCP client for the tests that must send what no HTTP client library would:
/// half a head, a wrong chunk size, a body cut short. Blocking calls run on a thread of
/// their own, never on the Swift concurrency pool that serves Kosh's handlers.
final class RawConnection: @unchecked Sendable {
    let fd: Int32

    /// Connects to 127.0.0.1:`port`; nil if the connection could not be made. A small
    /// `receiveBuffer` makes a client that does not read fill up quickly.
    init?(port: Int, receiveBuffer: Int32? = nil) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let rc = withLoopbackAddress(port: port) { connect(fd, $0, $1) }
        guard rc == 0 else { close(fd); return nil }
        self.fd = fd
    }

    deinit { close(fd) }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Sends what the socket takes now without waiting; returns how many bytes went.
    func sendWithoutWaiting(_ bytes: [UInt8]) -> Int {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n <= 0 { break }
            sent += n
        }
        return sent
    }

    /// Shuts the sending half: the server sees the end of the input.
    func finishSending() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads until the server closes or `seconds` pass; returns what came and whether the
    /// server closed the connection.
    func readAll(timeout seconds: Double) async -> (text: String, closed: Bool) {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread {
                var received: [UInt8] = []
                var closed = false
                let deadline = Date().addingTimeInterval(seconds)
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while Date() < deadline {
                    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    let wait = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
                    guard poll(&poller, 1, min(wait, 200)) >= 0 else { break }
                    if poller.revents == 0 { continue }
                    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { closed = true; break }
                    received += buffer[0..<n]
                }
                continuation.resume(returning: (String(decoding: received, as: UTF8.self), closed))
            }.start()
        }
    }

    /// Reads one response: up to the end of the body its `Content-Length` announces.
    func readResponse(timeout seconds: Double) async -> String {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread {
                var received: [UInt8] = []
                let deadline = Date().addingTimeInterval(seconds)
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while Date() < deadline {
                    if let complete = RawConnection.completeResponse(received) {
                        continuation.resume(returning: complete)
                        return
                    }
                    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    guard poll(&poller, 1, 200) >= 0 else { break }
                    if poller.revents == 0 { continue }
                    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { break }
                    received += buffer[0..<n]
                }
                continuation.resume(returning: String(decoding: received, as: UTF8.self))
            }.start()
        }
    }

    static func completeResponse(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return nil }
        let head = text[..<split.lowerBound].lowercased()
        var length = 0
        for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
            length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return text[split.upperBound...].utf8.count >= length ? text : nil
    }
}

/// 127.0.0.1:`port` as a socket address, for `bind` and `connect`.
func withLoopbackAddress<T>(port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// The status code of a raw response ("HTTP/1.1 408 …" → 408), or 0.
func statusCode(_ response: String) -> Int {
    let parts = response.split(separator: " ", maxSplits: 2)
    guard parts.count >= 2, parts[0].hasPrefix("HTTP/1.") else { return 0 }
    return Int(parts[1]) ?? 0
}

/// The body of a raw response.
func responseBody(_ response: String) -> String {
    guard let split = response.range(of: "\r\n\r\n") else { return "" }
    return String(response[split.upperBound...])
}
