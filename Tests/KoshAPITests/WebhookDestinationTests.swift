import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
@testable import KoshApp
import KoshCore
import KoshFlows
import KoshHTTP
import KoshRails
import KoshStorage
import KoshTesting
import Logging
import Synchronization
import Testing

/// Webhooks may not reach the operator's own network (issue 11 §3): the API refuses such URLs,
/// and the dispatcher checks again, by address, right before it connects.
@Suite("Webhook destinations", .serialized, .timeLimit(.minutes(3)))
struct WebhookDestinationTests {
    /// Every form of a non-public destination a merchant could try.
    static let privateURLs = [
        "http://127.0.0.1:8080/v1/payments", "http://127.0.0.2/", "http://localhost/", "http://LOCALHOST.:8080/", "http://api.localhost/",
        "http://[::1]:8080/", "http://[0:0:0:0:0:0:0:1]/", "http://[::]/", "http://0.0.0.0:8080/", "http://0/",
        "http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/",
        "http://10.0.0.5/", "http://172.16.3.4/", "http://192.168.1.1/", "http://100.64.0.1/", "http://198.18.0.1/",
        "http://2130706433/", "http://0x7f000001/", "http://0x7f.1/", "http://127.1/", "http://0177.0.0.1/", "http://127.0.0.1./",
        "http://[::ffff:127.0.0.1]/", "http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::1]/",
        "http://[fc00::1]/", "http://[fe80::1]/", "http://[fe80::1%25eth0]/", "http://[ff02::1]/", "http://224.0.0.1/",
        "http://255.255.255.255/", "http://192.0.2.10/", "http://[2001:db8::1]/", "http://printer.local/", "http://metadata.google.internal/",
        "http://router.home.arpa/", "http://intranet/",
    ]

    @Test("creating or moving an endpoint to a private, loopback or local destination is a 400 on the url field",
          arguments: TestDatabases.all)
    func privateDestinationsAreRefused(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let created = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://hooks.example.com/kosh", "events": ["payment.captured"]}"#)
            #expect(created.status == 200, "\(created.body)")
            let id = try #require(created.string("id"))
            for url in Self.privateURLs {
                let reply = try await kosh.call(.post, "/v1/webhooks", #"{"url": "\#(url)", "events": ["payment.captured"]}"#)
                #expect(reply.status == 400, "\(url) → \(reply.body)")
                #expect(reply.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"))
                #expect(reply.json["error"]?["field"] == .string("url"), "\(url) → \(reply.body)")
                let moved = try await kosh.call(.patch, "/v1/webhooks/\(id)", #"{"url": "\#(url)"}"#)
                #expect(moved.status == 400, "PATCH \(url) → \(moved.body)")
                #expect(moved.json["error"]?["field"] == .string("url"))
            }
            #expect(try await kosh.call(.get, "/v1/webhooks").int("count") == 1, "nothing was created")
            #expect(try await kosh.call(.get, "/v1/webhooks/\(id)").string("url") == "https://hooks.example.com/kosh", "nothing was moved")
            let userInfo = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://me:pw@hooks.example.com/", "events": ["payment.captured"]}"#)
            #expect(userInfo.status == 400 && userInfo.errorDescription == "The url may not contain a user name or password.")
            let port = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://hooks.example.com:0/", "events": ["payment.captured"]}"#)
            #expect(port.status == 400 && port.errorDescription == "The url's port must be 1 to 65535.")
        }
    }

    @Test("a name is refused when any address it resolves to is private, or when it does not resolve", arguments: TestDatabases.all)
    func resolvedNamesAreChecked(db: String) async throws {
        let resolver = ScriptedResolver()
        resolver.answer("split.example.com", with: [ScriptedResolver.publicAddress, .ipv4(10, 0, 0, 7)])
        resolver.answer("inside.example.com", with: [.v6(1)])
        resolver.answer("mapped.example.com", with: [.v6(0xFFFF_7F00_0001)])
        try await Kosh.run(db, resolver: resolver) { kosh in
            for host in ["split.example.com", "inside.example.com", "mapped.example.com"] {
                let reply = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://\#(host)/hook", "events": ["payment.captured"]}"#)
                #expect(reply.status == 400, "\(host) → \(reply.body)")
                #expect(reply.errorDescription?.contains("public address") == true, "\(reply.body)")
                #expect(reply.json["error"]?["field"] == .string("url"))
            }
            let nowhere = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://nowhere.example.com/hook", "events": ["payment.captured"]}"#)
            #expect(nowhere.status == 400)
            #expect(nowhere.errorDescription == "The url's host could not be resolved to a public address.")
            #expect(resolver.lookups(of: "nowhere.example.com") == 1)
            // Names refused on sight are never looked up.
            _ = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://kosh.internal/hook", "events": ["payment.captured"]}"#)
            #expect(resolver.lookups(of: "kosh.internal") == 0)
            let good = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://Hooks.Example.com./hook", "events": ["payment.captured"]}"#)
            #expect(good.status == 200, "\(good.body)")
        }
    }

    @Test("KOSH_WEBHOOK_ALLOW_PRIVATE lets a development receiver in, and is off by default")
    func allowPrivateSetting() async throws {
        #expect(try KoshConfiguration.fromEnvironment([:]).webhooks.allowPrivateDestinations == false)
        #expect(try KoshConfiguration.fromEnvironment(["KOSH_WEBHOOK_ALLOW_PRIVATE": "1"]).webhooks.allowPrivateDestinations)
        #expect(try KoshConfiguration.fromEnvironment(["KOSH_WEBHOOK_ALLOW_PRIVATE": "0"]).webhooks.allowPrivateDestinations == false)
        #expect(throws: (any Error).self) { try KoshConfiguration.fromEnvironment(["KOSH_WEBHOOK_ALLOW_PRIVATE": "yes"]) }
        try await Kosh.run("sqlite", allowPrivateWebhooks: true) { kosh in
            for url in ["http://127.0.0.1:18090/hook", "http://localhost:18090/hook", "http://[::1]:18090/hook", "http://10.1.2.3/hook"] {
                let reply = try await kosh.call(.post, "/v1/webhooks", #"{"url": "\#(url)", "events": ["payment.captured"]}"#)
                #expect(reply.status == 200, "\(url) → \(reply.body)")
            }
            // Still a URL: the setting lifts the destination checks, not the syntax.
            let bad = try await kosh.call(.post, "/v1/webhooks", #"{"url": "http://me@127.0.0.1/", "events": ["payment.captured"]}"#)
            #expect(bad.status == 400)
        }
    }

    @Test("with the setting off, the dispatcher refuses a private destination saved earlier, without contacting it",
          arguments: TestDatabases.all)
    func dispatcherRefusesPrivateDestinations(db: String) async throws {
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            let receiver = try await Receiver.start()
            defer { receiver.stop() }
            // Saved while private destinations were allowed (or before the check existed)…
            let webhookID = try await kosh.registerWebhook(receiver.url)
            _ = try await kosh.capturedPayment(amount: 5_000)
            // …and sent by a server that refuses them.
            let dispatcher = kosh.dispatcher(schedule: [60_000], allowPrivate: false)
            #expect(try await dispatcher.runOnce() == 1)
            try await dispatcher.shutdown()
            #expect(receiver.all.isEmpty, "the receiver was contacted")
            let delivery = try #require(try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries").json["items"]?[0])
            #expect(delivery["status"] == .string("pending"), "a refused destination is a failed attempt, retried on the schedule")
            #expect(delivery["attempts_count"] == .int(1))
            #expect(delivery["last_status_code"] == .null)
            #expect(delivery["last_error"] == .string("destination refused: private address"))
            #expect(delivery["attempts"]?[0]?["error"] == .string("destination refused: private address"))
            #expect(delivery["attempts"]?[0]?["response"] == .null)
            #expect(delivery["attempts"]?[0]?["status_code"] == .null)

            // The same delivery, redelivered and sent by a dispatcher that allows them, arrives.
            guard case .string(let deliveryID)? = delivery["id"] else { Issue.record("no delivery id"); return }
            #expect(try await kosh.call(.post, "/v1/webhooks/deliveries/\(deliveryID)/redeliver").status == 200)
            let allowing = kosh.dispatcher(allowPrivate: true)
            #expect(try await allowing.runOnce() == 1)
            try await allowing.shutdown()
            #expect(receiver.all.count == 1)
        }
    }

    @Test("an endpoint row pointing at a local name, or at an odd form of loopback, is refused at delivery", arguments: TestDatabases.all)
    func dispatcherRefusesRowsInsertedDirectly(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let receiver = try await Receiver.start()
            defer { receiver.stop() }
            let merchantID = kosh.merchant.merchant.id.rawValue
            var ids: [String: String] = [:]
            let urls = ["http://localhost:\(receiver.port)/hook": "destination refused: local host name",
                        "http://0x7f.1:\(receiver.port)/hook": "destination refused: private address",
                        "http://[::ffff:127.0.0.1]:\(receiver.port)/hook": "destination refused: private address",
                        "http://user@127.0.0.1:\(receiver.port)/hook": "destination refused: not a valid webhook URL"]
            for url in urls.keys {
                ids[url] = try await kosh.services.webhooks.createEndpoint(merchantID: merchantID, url: url, events: [.paymentCaptured],
                                                                           secret: "whsec_kosh_test_secret").id
            }
            _ = try await kosh.capturedPayment(amount: 5_000)
            let dispatcher = kosh.dispatcher(schedule: [60_000])
            #expect(try await dispatcher.runOnce() == urls.count)
            try await dispatcher.shutdown()
            #expect(receiver.all.isEmpty)
            for (url, error) in urls {
                let delivery = try await kosh.call(.get, "/v1/webhooks/\(ids[url]!)/deliveries").json["items"]?[0]
                #expect(delivery?["last_error"] == .string(error), "\(url)")
            }
        }
    }

    @Test("DNS rebinding: a name public at create and private at delivery is refused at delivery", arguments: TestDatabases.all)
    func rebindingIsRefusedAtDelivery(db: String) async throws {
        let resolver = ScriptedResolver()
        resolver.answer("rebind.example.com", with: [ScriptedResolver.publicAddress])
        try await Kosh.run(db, resolver: resolver) { kosh in
            let receiver = try await Receiver.start()
            defer { receiver.stop() }
            let webhookID = try await kosh.registerWebhook("http://rebind.example.com:\(receiver.port)/hook")
            resolver.answer("rebind.example.com", with: [.ipv4(127, 0, 0, 1)])
            _ = try await kosh.capturedPayment(amount: 5_000)
            let dispatcher = kosh.dispatcher(schedule: [60_000])
            #expect(try await dispatcher.runOnce() == 1)
            try await dispatcher.shutdown()
            #expect(receiver.all.isEmpty, "the rebound address was contacted")
            #expect(resolver.lookups(of: "rebind.example.com") == 2, "looked up at create and again at delivery")
            let delivery = try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries").json["items"]?[0]
            #expect(delivery?["last_error"] == .string("destination refused: private address"))
            #expect(delivery?["status"] == .string("pending"))
        }
    }

    /// The dispatcher connects to the address it checked, not to whatever the name resolves to
    /// later. Loopback stands in for a public receiver here (`permits` is widened to it, since
    /// no test may reach a real public address); real DNS cannot resolve the name at all.
    @Test("the dispatcher connects only to the checked address, keeps it within the TTL when DNS changes, and keeps the name for the Host header")
    func pinnedAddressIsTheOneConnected() async throws {
        let resolver = ScriptedResolver()
        let host = "receiver.kosh-pinned.example"
        resolver.answer(host, with: [.ipv4(127, 0, 0, 1)])
        try await Kosh.run("sqlite", resolver: resolver) { kosh in
            let receiver = try await Receiver.start()
            defer { receiver.stop() }
            let webhookID = try await kosh.services.webhooks.createEndpoint(
                merchantID: kosh.merchant.merchant.id.rawValue, url: "http://\(host):\(receiver.port)/hook", events: [.paymentCaptured],
                secret: "whsec_kosh_test_secret").id
            var settings = kosh.services.webhookSettings
            settings.schedule = WebhookRetrySchedule(retryDelaysMillis: [60_000])
            func dispatcher() -> WebhookDispatcher {
                WebhookDispatcher(store: kosh.services.webhooks, settings: settings, logger: Logger(label: "pinned-test"),
                                  owner: "pinned", permits: { $0 == .ipv4(127, 0, 0, 1) })
            }
            let pinned = dispatcher()
            _ = try await kosh.capturedPayment(amount: 5_000)
            _ = try await kosh.capturedPayment(amount: 6_000)
            #expect(try await pinned.runOnce() == 2)
            #expect(receiver.all.count == 2, "both reached the checked address")
            #expect(receiver.all.allSatisfy { $0.authority == "\(host):\(receiver.port)" }, "\(receiver.all.map(\.authority))")
            #expect(resolver.lookups(of: host) <= 2, "looked up once per TTL (two concurrent first sends may both look)")
            let lookupsBefore = resolver.lookups(of: host)

            // DNS now answers an address that is not permitted: within the TTL the checked
            // address is still the one connected to, and the name is not looked up again…
            resolver.answer(host, with: [.ipv4(127, 0, 0, 2)])
            _ = try await kosh.capturedPayment(amount: 7_000)
            #expect(try await pinned.runOnce() == 1)
            #expect(receiver.all.count == 3)
            #expect(resolver.lookups(of: host) == lookupsBefore, "the pin was reused within the TTL")
            try await pinned.shutdown()
            #expect(pinned.pins.count == 0)

            // …and a lookup (here a new node's first) checks the new answer and refuses it.
            let fresh = dispatcher()
            _ = try await kosh.capturedPayment(amount: 8_000)
            #expect(try await fresh.runOnce() == 1)
            try await fresh.shutdown()
            #expect(receiver.all.count == 3)
            let deliveries = try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries").json["items"]
            #expect(deliveries?[0]?["last_error"] == .string("destination refused: private address"))
        }
    }

    @Test("a lookup gives the resolver's answer, or none once the timeout passes", .timeLimit(.minutes(1)))
    func lookupTimeout() async throws {
        let policy = WebhookDestinationPolicy(allowPrivate: false, resolver: ScriptedResolver(), lookupTimeoutMillis: 500)
        // Many at once, so the answer and the (cancelled) timer race: the answer must win every time.
        let misses = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<2_000 { group.addTask { await policy.addresses(of: "example.com") == [ScriptedResolver.publicAddress] ? 0 : 1 } }
            return await group.reduce(0, +)
        }
        #expect(misses == 0)
        let hanging = WebhookDestinationPolicy(allowPrivate: false, resolver: HangingResolver(), lookupTimeoutMillis: 100)
        let started = ContinuousClock.now
        #expect(await hanging.addresses(of: "example.com").isEmpty)
        #expect(started.duration(to: .now) < .seconds(3))
        await #expect(throws: KoshError.self) { try await hanging.checked("https://example.com/hook") }
    }

    /// Only names this machine answers without DNS (tests send nothing off loopback).
    @Test("the system resolver reads /etc/hosts and numeric forms, as the HTTP client's lookup would")
    func systemResolver() async throws {
        let resolver = SystemHostResolver()
        #expect(try await resolver.addresses(of: "localhost").contains(.ipv4(127, 0, 0, 1)))
        #expect(try await resolver.addresses(of: "127.0.0.1") == [.ipv4(127, 0, 0, 1)])
        #expect(try await resolver.addresses(of: "::1") == [.v6(1)])
        // getaddrinfo reads inet_aton's short and hex forms: why Kosh parses them the same way itself.
        #expect(try await resolver.addresses(of: "127.1") == [.ipv4(127, 0, 0, 1)])
        #expect(try await resolver.addresses(of: "0x7f000001") == [.ipv4(127, 0, 0, 1)])
    }

    @Test("pinned clients are bounded; an evicted one is shut down once its request is done")
    func pinnedClientsAreBounded() async throws {
        let made = ClientLog()
        let pins = PinnedClients(capacity: 2, ttl: .seconds(60)) { overrides in
            made.add(overrides)
            return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        }
        let a = try #require(pins.pin(host: "a.example.com", address: .ipv4(93, 184, 215, 1)))
        pins.release(a)
        let b = try #require(pins.pin(host: "b.example.com", address: .ipv4(93, 184, 215, 2)))
        #expect(pins.fresh(host: "a.example.com")?.client === a.client)
        pins.release(a)
        // A third host evicts the least recently used pin (b, still in flight: kept until released).
        _ = pins.fresh(host: "a.example.com").map(pins.release)
        let c = try #require(pins.pin(host: "c.example.com", address: .ipv4(93, 184, 215, 3)))
        #expect(pins.count == 3)
        #expect(pins.fresh(host: "b.example.com") == nil)
        pins.release(b)
        #expect(pins.count == 2, "b is shut down once released")
        // The same host with a new checked address gets a new client; the old one goes.
        let c2 = try #require(pins.pin(host: "c.example.com", address: .ipv4(93, 184, 215, 4)))
        #expect(c2.client !== c.client)
        pins.release(c)
        pins.release(c2)
        #expect(pins.count == 2)
        #expect(made.all.last == ["c.example.com": "93.184.215.4"])
        await pins.shutdown()
        #expect(pins.count == 0)
        #expect(pins.pin(host: "d.example.com", address: .ipv4(93, 184, 215, 5)) == nil)
    }

    @Test("a pin is fresh for its TTL, then the host must be looked up and pinned again")
    func pinsExpire() async throws {
        let elapsed = Mutex(Duration.zero)
        let started = ContinuousClock.now
        let pins = PinnedClients(capacity: 4, ttl: .milliseconds(300), now: { started + elapsed.withLock { $0 } }) { _ in
            HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        }
        let first = try #require(pins.pin(host: "a.example.com", address: .ipv4(93, 184, 215, 1)))
        pins.release(first)
        let again = try #require(pins.fresh(host: "a.example.com"), "fresh right after the check")
        pins.release(again)
        elapsed.withLock { $0 = .milliseconds(299) }
        #expect(pins.fresh(host: "a.example.com").map { pins.release($0); return true } == true, "fresh just before the TTL")
        elapsed.withLock { $0 = .milliseconds(300) }
        #expect(pins.fresh(host: "a.example.com") == nil, "stale after the TTL")
        // Checked again with the same answer: the same client, fresh once more.
        let renewed = try #require(pins.pin(host: "a.example.com", address: .ipv4(93, 184, 215, 1)))
        #expect(renewed.client === first.client)
        pins.release(renewed)
        #expect(pins.fresh(host: "a.example.com").map { pins.release($0); return true } == true)
        await pins.shutdown()
    }
}

/// A DNS server that never answers (within a test's patience).
struct HangingResolver: HostResolver {
    func addresses(of host: String) async throws -> [NetworkAddress] {
        // Real time on purpose: the lookup timeout under test runs on the wall clock and leaves a
        // blocked lookup to finish on its own (it is never cancelled), so this one ends, after 30 s.
        try await Task.sleep(for: .seconds(30))
        return []
    }
}

final class ClientLog: Sendable {
    let made = Mutex<[[String: String]]>([])
    func add(_ overrides: [String: String]) { made.withLock { $0.append(overrides) } }
    var all: [[String: String]] { made.withLock { $0 } }
}
