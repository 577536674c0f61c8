import KoshCore
import KoshJSON

/// An `Idempotency-Key` sent with a command, bound to the request that first used it.
public struct IdempotencyRequest: Sendable, Hashable {
    public let merchantID: String
    public let key: String
    /// A hash of the method, path and body of the request.
    public let requestHash: String

    public init(merchantID: String, key: String, requestHash: String) {
        self.merchantID = merchantID
        self.key = key
        self.requestHash = requestHash
    }
}

/// What a command answers.
public enum CommandResponse: Sendable, Equatable {
    /// The command ran. `body` is the rendered reply. `deferred`: a follow-up failed after
    /// commit and is left to the janitor (the reply is the committed state).
    case done(status: Int, body: String, deferred: String?)
    /// The same request ran before under this key: its recorded response, sent again.
    case replayed(status: Int, body: String)
}

/// What a command replies with, before rendering.
enum Reply: Sendable {
    case order(Order)
    case payment(Payment)
    /// Razorpay's answer to an S2S payment: its id, and for the intent flow the link the
    /// payer's app opens (once the rail issued it).
    case paymentCreated(Payment)
    case refund(Refund)
    /// A reply the use case built itself (a card payment's `next` actions).
    case body(JSON)

    func json(_ renderer: any EntityRenderer) -> JSON {
        switch self {
        case .order(let order): return renderer.order(order)
        case .payment(let payment): return renderer.payment(payment)
        case .refund(let refund): return renderer.refund(refund)
        case .body(let body): return body
        case .paymentCreated(let payment):
            var fields: [(String, JSON)] = [("razorpay_payment_id", .string(payment.id.rawValue))]
            if payment.flow == .intent, let link = payment.upiLink { fields.append(("link", .string(link))) }
            return .object(fields)
        }
    }

    /// The reply with the entities its follow-ups changed.
    func refreshed(by results: [FollowUpResult]) -> Reply {
        var reply = self
        for result in results {
            switch (reply, result) {
            case (.paymentCreated(let old), .payment(let new)) where old.id == new.id: reply = .paymentCreated(new)
            case (.payment(let old), .payment(let new)) where old.id == new.id: reply = .payment(new)
            case (.refund(let old), .refund(let new)) where old.id == new.id: reply = .refund(new)
            default: break
            }
        }
        return reply
    }
}

/// What a command's transaction produced.
struct Outcome: Sendable {
    var reply: Reply
    var followUps: [FollowUp] = []
}

extension PaymentFlows {
    /// Runs a command's work in one transaction, then its follow-ups. With an idempotency
    /// key, the key is claimed first and the reply is recorded in the same transaction as the
    /// effect; a refusal (4xx) is recorded as the key's response; any other failure frees the
    /// key for a retry.
    func command(_ idempotency: IdempotencyRequest?, _ work: (any StoreTransaction) async throws -> Outcome) async throws -> CommandResponse {
        try await command(idempotency, prepare: {}, { _, tx in try await work(tx) })
    }

    /// As `command`, with a step outside the transaction (a call to another service, e.g. the
    /// card vault) that runs only once the key is claimed: a replay answers the recorded
    /// response without running it again, and a refusal it throws is the key's response.
    func command<Prepared>(_ idempotency: IdempotencyRequest?, prepare: () async throws -> Prepared,
                           _ work: (Prepared, any StoreTransaction) async throws -> Outcome) async throws -> CommandResponse {
        guard let idempotency else {
            let prepared = try await prepare()
            let outcome = try await store.transaction { tx in try await work(prepared, tx) }
            return await finish(outcome, recorded: outcome.reply.json(renderer).serialized(), claim: nil)
        }
        let token: String
        switch try await self.idempotency.claim(merchantID: idempotency.merchantID, key: idempotency.key,
                                                requestHash: idempotency.requestHash, now: clock.nowMillis()) {
        case .replay(let status, let body):
            return .replayed(status: status, body: body)
        case .mismatch:
            throw KoshError.badRequest("This Idempotency-Key was already used with a different request", field: "Idempotency-Key",
                                       reason: "idempotency_key_reused")
        case .inProgress(let retryAfter):
            throw KoshError(.conflict, "A request with this Idempotency-Key is still being processed; retry after \(retryAfter) s",
                            field: "Idempotency-Key", reason: "idempotency_key_in_use", retryAfterSeconds: retryAfter)
        case .claimed(let claimToken):
            token = claimToken
        }
        let committed: (Outcome, String)
        do {
            let prepared = try await prepare()
            committed = try await store.transaction { tx in
                let outcome = try await work(prepared, tx)
                let body = outcome.reply.json(renderer).serialized()
                try await tx.recordIdempotentResponse(merchantID: idempotency.merchantID, key: idempotency.key, token: token,
                                                      status: 200, body: body)
                return (outcome, body)
            }
        } catch let error as KoshError where error.code.httpStatus < 500 && error.code != .conflict {
            // The request was refused with no effect: the refusal is its response.
            try await self.idempotency.complete(merchantID: idempotency.merchantID, key: idempotency.key, token: token,
                                                status: error.code.httpStatus, body: renderer.error(error).serialized())
            throw error
        } catch {
            try? await self.idempotency.release(merchantID: idempotency.merchantID, key: idempotency.key, token: token)
            throw error
        }
        return await finish(committed.0, recorded: committed.1, claim: (idempotency, token))
    }

    /// Runs the follow-ups and answers with the state they left; under a key, that final
    /// answer replaces the recorded one, so a retry sees what the first caller saw.
    func finish(_ outcome: Outcome, recorded: String, claim: (IdempotencyRequest, String)?) async -> CommandResponse {
        guard !outcome.followUps.isEmpty else { return .done(status: 200, body: recorded, deferred: nil) }
        let (results, failure) = await run(outcome.followUps)
        if let failure {
            // The effect is committed; the janitor finishes the rail work. Answer with what was recorded.
            return .done(status: 200, body: recorded, deferred: String(describing: failure))
        }
        // Only a follow-up that left an entity behind (a submission, a refund sent) can change the
        // reply; a route outcome recorded (every inline test-mode payment) must not cost a render.
        guard results.contains(where: { if case .nothing = $0 { false } else { true } }) else {
            return .done(status: 200, body: recorded, deferred: nil)
        }
        let body = outcome.reply.refreshed(by: results).json(renderer).serialized()
        if let (request, token) = claim, body != recorded {
            do {
                try await idempotency.complete(merchantID: request.merchantID, key: request.key, token: token, status: 200, body: body)
            } catch {
                return .done(status: 200, body: body, deferred: "recording the final response failed: \(error)")
            }
        }
        return .done(status: 200, body: body, deferred: nil)
    }
}
