import ArgumentParser
import Foundation
import KoshApp
import KoshCore
import KoshJSON
import KoshFlows
import KoshHTTP
import Logging

/// The merchant whose webhooks an operator command manages, and the services to reach them.
struct MerchantTarget: ParsableArguments {
    @Option(help: "The merchant's id (mer_…).")
    var merchant: String
    @OptionGroup var db: DatabaseOption

    /// Opens the database (no rails), checks the merchant exists, runs `body`, closes.
    func with<T>(_ body: (KoshServices, Merchant) async throws -> T) async throws -> T {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var config = try db.configuration()
        config.railsURL = nil  // managing webhooks needs no rails
        let services = try await KoshServices.open(config, logger: makeLogger())
        do {
            guard let found = try await services.merchants.merchant(id: ID(merchant)) else {
                throw ValidationError("no merchant \(merchant.prefix(64))")
            }
            let result = try await body(services, found)
            try await services.close()
            return result
        } catch {
            try? await services.close()
            throw error
        }
    }
}

/// API validation errors become the command's usage errors (exit code 64), with the same words.
func checked<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as KoshError { throw ValidationError(error.message) }
}

/// The URL check the API makes (public destinations only unless `KOSH_WEBHOOK_ALLOW_PRIVATE=1`).
func checkedURL(_ url: String, _ db: DatabaseOption) async throws -> String {
    let settings = try db.configuration().webhooks
    do { return try await WebhookAdministration.checkedURL(url, destinations: settings.destinations) } catch let error as KoshError {
        throw ValidationError(error.message)
    }
}

func endpointID(_ id: String) throws -> String {
    guard id.hasPrefix("wh_"), id.count <= 40 else { throw ValidationError("\(id.prefix(64)) is not a webhook id (wh_…)") }
    return id
}

struct MerchantWebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook", abstract: "Manage a merchant's webhook endpoints and their deliveries (what /v1/webhooks does).",
        subcommands: [Create.self, List.self, Update.self, Delete.self, Deliveries.self, Redeliver.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register an endpoint; prints it as JSON, with the secret when Kosh generated it (shown only this once).")
        @OptionGroup var target: MerchantTarget
        @Option(help: "Where events are POSTed (http or https).") var url: String
        @Option(help: "Events to send, comma-separated, e.g. payment.captured,refund.processed.") var events: String
        @Option(help: "The signing secret (8–256 characters); default: a random one, printed once.") var secret: String?

        func run() async throws {
            let url = try await checkedURL(self.url, target.db)
            let events = try checked { try WebhookAdministration.events(self.events) }
            let secret = try checked { try self.secret.map(WebhookAdministration.checkedSecret) }
            let json = try await target.with { services, merchant in
                let chosen = secret ?? WebhookAdministration.generatedSecret()
                let endpoint = try await services.webhooks.createEndpoint(merchantID: merchant.id.rawValue, url: url, events: events, secret: chosen)
                guard secret == nil, case .object(let pairs) = WebhookAdministration.render(endpoint) else {
                    return WebhookAdministration.render(endpoint)
                }
                return JSON.object(pairs + [("secret", .string(chosen))])
            }
            print(json.serialized())
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The merchant's endpoints, newest first, one JSON object a line.")
        @OptionGroup var target: MerchantTarget

        func run() async throws {
            let endpoints = try await target.with { services, merchant in
                try await services.webhooks.endpoints(merchantID: merchant.id.rawValue, page: Page(count: 100, skip: 0))
            }
            for endpoint in endpoints { print(WebhookAdministration.render(endpoint).serialized()) }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change an endpoint's url, events, secret or active flag (clears `failing`).")
        @OptionGroup var target: MerchantTarget
        @Argument(help: "The endpoint's id (wh_…).") var id: String
        @Option var url: String?
        @Option(help: "Events, comma-separated.") var events: String?
        @Option var secret: String?
        @Option(help: "true to deliver, false to pause (deliveries wait).") var active: Bool?

        func run() async throws {
            let id = try endpointID(self.id)
            let url: String?
            if let given = self.url { url = try await checkedURL(given, target.db) } else { url = nil }
            let events = try checked { try self.events.map(WebhookAdministration.events) }
            let secret = try checked { try self.secret.map(WebhookAdministration.checkedSecret) }
            let json = try await target.with { services, merchant in
                guard var endpoint = try await services.webhooks.endpoint(id: id, merchantID: merchant.id.rawValue) else {
                    throw ValidationError("the merchant has no webhook \(id)")
                }
                if let url { endpoint.url = url }
                if let events { endpoint.events = events }
                if let active { endpoint.active = active }
                try await services.webhooks.updateEndpoint(endpoint, secret: secret)
                endpoint.failing = false
                return WebhookAdministration.render(endpoint)
            }
            print(json.serialized())
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an endpoint; its pending deliveries die.")
        @OptionGroup var target: MerchantTarget
        @Argument(help: "The endpoint's id (wh_…).") var id: String

        func run() async throws {
            let id = try endpointID(self.id)
            try await target.with { services, merchant in
                guard try await services.webhooks.deleteEndpoint(id: id, merchantID: merchant.id.rawValue) else {
                    throw ValidationError("the merchant has no webhook \(id)")
                }
            }
            print(JSON.object([("id", .string(id)), ("entity", .string("webhook")), ("deleted", .bool(true))]).serialized())
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An endpoint's deliveries with every attempt, newest first, one JSON object a line.")
        @OptionGroup var target: MerchantTarget
        @Argument(help: "The endpoint's id (wh_…).") var id: String
        @Option(help: "How many (1–100).") var count = 10

        func validate() throws {
            guard (1...100).contains(count) else { throw ValidationError("--count must be 1 to 100") }
        }

        func run() async throws {
            let id = try endpointID(self.id)
            let deliveries = try await target.with { services, merchant in
                guard try await services.webhooks.endpoint(id: id, merchantID: merchant.id.rawValue) != nil else {
                    throw ValidationError("the merchant has no webhook \(id)")
                }
                return try await services.webhooks.deliveries(endpointID: id, merchantID: merchant.id.rawValue, page: Page(count: count, skip: 0))
            }
            for delivery in deliveries { print(WebhookAdministration.render(delivery).serialized()) }
        }
    }

    struct Redeliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue a delivery again, due now (a running `kosh serve` sends it).")
        @OptionGroup var target: MerchantTarget
        @Argument(help: "The delivery's id (whdl_…).") var id: String

        func run() async throws {
            let id = self.id
            let json = try await target.with { services, merchant in
                guard let delivery = try await services.webhooks.redeliver(deliveryID: id, merchantID: merchant.id.rawValue) else {
                    throw ValidationError("the merchant has no webhook delivery \(id.prefix(64))")
                }
                return WebhookAdministration.render(delivery)
            }
            print(json.serialized())
        }
    }
}

struct MerchantNotificationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notifications", abstract: "The merchant's notification log (email, SMS, push; recipients masked), newest first.")
    @OptionGroup var target: MerchantTarget
    @Option(help: "How many (1–100).") var count = 20

    func validate() throws {
        guard (1...100).contains(count) else { throw ValidationError("--count must be 1 to 100") }
    }

    func run() async throws {
        let entries = try await target.with { services, merchant in
            try await services.webhooks.notifications(merchantID: merchant.id.rawValue, page: Page(count: count, skip: 0))
        }
        for entry in entries { print(WebhookAdministration.render(entry).serialized()) }
    }
}
