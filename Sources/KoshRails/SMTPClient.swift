import Foundation
import KoshCore
import NIOCore
import NIOPosix

/// Where email goes: `KOSH_SMTP_URL=smtp://host:port` and the from-address.
public struct SMTPConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var from: String
    /// The name Kosh gives in EHLO.
    public var heloName: String
    /// The whole conversation, connect to QUIT.
    public var timeoutMillis: Int64

    public init(host: String, port: Int, from: String, heloName: String = "kosh.localhost", timeoutMillis: Int64 = 10_000) {
        self.host = host
        self.port = port
        self.from = from
        self.heloName = heloName
        self.timeoutMillis = timeoutMillis
    }

    /// `smtp://host:port` (port 25 when absent).
    public init(url: String, from: String) throws(SMTPError) {
        guard url.hasPrefix("smtp://") else { throw SMTPError(code: nil, message: "KOSH_SMTP_URL must look like smtp://host:port") }
        let authority = url.dropFirst("smtp://".count).split(separator: "/").first.map(String.init) ?? ""
        let parts = authority.split(separator: ":")
        guard let host = parts.first, !host.isEmpty, parts.count <= 2 else { throw SMTPError(code: nil, message: "KOSH_SMTP_URL has no host") }
        guard let port = parts.count == 2 ? Int(parts[1]) : 25, (1...65_535).contains(port) else {
            throw SMTPError(code: nil, message: "KOSH_SMTP_URL has a bad port")
        }
        self.init(host: String(host), port: port, from: from)
    }
}

/// A refused or broken SMTP conversation. `message` is masked (it may quote addresses).
public struct SMTPError: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: Int?
    public let message: String
    public init(code: Int?, message: String) {
        self.code = code
        self.message = Masking.text(message)
    }
    public var description: String { code.map { "SMTP \($0): \(message)" } ?? "SMTP: \(message)" }
    /// 5xx answers are permanent; still retried on the schedule (a misconfigured relay can be fixed).
    public var permanent: Bool { (code ?? 0) >= 500 }
}

/// A plain SMTP client (RFC 5321) on swift-nio: EHLO, MAIL FROM, RCPT TO, DATA, QUIT.
/// No TLS or AUTH: it speaks to a relay on a trusted network (or a local MTA).
public struct SMTPClient: Sendable {
    public let configuration: SMTPConfiguration
    let group: any EventLoopGroup

    public init(configuration: SMTPConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.group = group
    }

    /// Sends one plain-text message to `to`; returns when the server accepted the DATA (250).
    public func send(to: String, subject: String, body: String, messageID: String) async throws {
        let timeout = configuration.timeoutMillis
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.converse(to: to, subject: subject, body: body, messageID: messageID) }
            group.addTask {
                try await Task.sleep(for: .milliseconds(timeout))
                throw SMTPError(code: nil, message: "no answer within \(timeout) ms")
            }
            defer { group.cancelAll() }
            try await group.next()!
        }
    }

    static func checkAddress(_ address: String) throws(SMTPError) {
        guard address.unicodeScalars.contains("@"), !address.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "<" || $0 == ">" || $0 == " " }) else {
            throw SMTPError(code: nil, message: "bad address \(address)")
        }
    }

    /// The message as sent after DATA: headers, a blank line, the body with CRLF line ends and
    /// dot-stuffing (the terminating `.` line is not included).
    public static func message(from: String, to: String, subject: String, body: String, messageID: String, date: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let clean = { (s: String) in s.filter { $0 != "\r" && $0 != "\n" } }
        var out = "From: \(from)\r\nTo: \(to)\r\nSubject: \(clean(subject))\r\nDate: \(formatter.string(from: date))\r\n"
        out += "Message-ID: <\(clean(messageID))@kosh>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        out += "Content-Transfer-Encoding: 8bit\r\n\r\n"
        for line in body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            out += (line.hasPrefix(".") ? "." : "") + line + "\r\n"
        }
        return out
    }

    func converse(to: String, subject: String, body: String, messageID: String) async throws {
        try Self.checkAddress(to)
        try Self.checkAddress(configuration.from)
        let config = configuration
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(config.timeoutMillis))
            .connect(host: config.host, port: config.port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        try await channel.executeThenClose { inbound, outbound in
            var replies = ReplyReader(iterator: inbound.makeAsyncIterator())
            func command(_ line: String?, expect codes: Set<Int>) async throws {
                if let line { try await outbound.write(ByteBuffer(string: line + "\r\n")) }
                let (code, text) = try await replies.next()
                guard codes.contains(code) else { throw SMTPError(code: code, message: text) }
            }
            try await command(nil, expect: [220])
            try await command("EHLO \(config.heloName)", expect: [250])
            try await command("MAIL FROM:<\(config.from)>", expect: [250])
            try await command("RCPT TO:<\(to)>", expect: [250, 251])
            try await command("DATA", expect: [354])
            try await command(Self.message(from: config.from, to: to, subject: subject, body: body, messageID: messageID) + ".",
                              expect: [250])
            // The relay took the message with its 250: it is sent. QUIT is a courtesy whose answer
            // is not awaited, so a relay slow to say goodbye cannot turn a sent mail into a
            // timeout, and a retry into a second copy.
            try? await outbound.write(ByteBuffer(string: "QUIT\r\n"))
        }
    }

    /// Reads SMTP replies: `250-…` continues, `250 …` ends one.
    struct ReplyReader {
        var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        var pending: [UInt8] = []

        mutating func line() async throws -> String {
            while true {
                if let lf = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    var bytes = pending[..<lf]
                    if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
                    pending.removeSubrange(...lf)
                    return String(decoding: bytes, as: UTF8.self)
                }
                guard pending.count < 8_192 else { throw SMTPError(code: nil, message: "reply line too long") }
                guard let chunk = try await iterator.next() else { throw SMTPError(code: nil, message: "connection closed") }
                pending += chunk.readableBytesView
            }
        }

        mutating func next() async throws -> (Int, String) {
            var lines: [String] = []
            for _ in 0..<100 {
                let line = try await line()
                guard line.utf8.count >= 3, let code = Int(line.prefix(3)) else { throw SMTPError(code: nil, message: "bad reply \(line.prefix(80))") }
                lines.append(String(line.dropFirst(4)))
                if line.utf8.count == 3 || line.dropFirst(3).first == " " { return (code, lines.joined(separator: " ")) }
            }
            throw SMTPError(code: nil, message: "reply too long")
        }
    }
}
