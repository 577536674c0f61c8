import KoshISO8583

/// What the acquirer does with one message: answer now (nil: nothing to answer), or wait for a
/// slow issuer and then ask `issuerAnswered`.
enum AcquirerStep: Sendable {
    case answer(ISO8583Message?)
    case awaitIssuer(paymentID: String, epoch: UInt64, afterMs: Int64)
}

/// The acquirer host and its issuers on the world (docs/CARDS.md §2). `uptime` is monotonic
/// milliseconds of real time: slow issuers answer on it, not on the sandbox's clock, because
/// they hold up an answer on the wire.
extension SandboxWorld {
    typealias Code = AcquirerProfile.Code

    /// Draws the acquirer's faults for one message and counts it.
    /// Network management (08xx: sign-on, echo) is touched only by `down`: the other faults are
    /// about payments, and a line whose echoes fail is replaced before any payment rides it.
    mutating func admitCardMessage(now: Int64, networkManagement: Bool = false) -> CardAdmission {
        let config = faultConfig(.acquirer)
        stats[.acquirer, default: RailStats()].calls += 1
        if isDown(.acquirer, now: now) {
            stats[.acquirer, default: RailStats()].errorsInjected += 1
            return .closeConnection
        }
        if networkManagement { return .proceed(afterMs: 0, dropAnswer: false) }
        var delay = config.latencyMinMs
        if config.latencyMaxMs > config.latencyMinMs {
            delay += Int64(random.next(below: UInt64(config.latencyMaxMs - config.latencyMinMs + 1)))
        }
        if random.chance(config.errorRate) {
            stats[.acquirer, default: RailStats()].errorsInjected += 1
            return .malfunction(afterMs: delay)
        }
        if random.chance(config.timeoutRate) {
            stats[.acquirer, default: RailStats()].timeoutsInjected += 1
            return .silence
        }
        let drop = random.chance(config.dropResponseRate)
        if drop { stats[.acquirer, default: RailStats()].responsesDropped += 1 }
        return .proceed(afterMs: delay, dropAnswer: drop)
    }

    /// `down`, or inside a downtime window.
    func isDown(_ rail: Rail, now: Int64) -> Bool {
        let config = faultConfig(rail)
        return config.down || config.downtime?.contains(now) == true
    }

    /// One request on the acquirer's wire.
    mutating func acquire(_ request: ISO8583Message, now: Int64, uptime: Int64) -> AcquirerStep {
        switch request.mti {
        case "0800": .answer(networkManagement(request))
        case "0100": authorise(request, now: now, uptime: uptime)
        case "0200": .answer(financial(request))
        case "0400", "0420": .answer(reverse(request))
        default: .answer(AcquirerProfile.answer(to: request, code: Code.formatError))
        }
    }

    private func networkManagement(_ request: ISO8583Message) -> ISO8583Message? {
        let known = request[11] != nil && ["001", "002", "301"].contains(request[70] ?? "")
        return AcquirerProfile.answer(to: request, code: known ? Code.approved : Code.formatError)
    }

    // MARK: 0100

    private mutating func authorise(_ request: ISO8583Message, now: Int64, uptime: Int64) -> AcquirerStep {
        func answer(_ code: String, _ authCode: String? = nil) -> AcquirerStep {
            .answer(AcquirerProfile.answer(to: request, code: code, authCode: authCode))
        }
        guard request[3] == AcquirerProfile.authorisationCode, let amount = AcquirerProfile.amount(request[4]),
              request[49] == AcquirerProfile.rupeeCurrency, let tags = AcquirerProfile.tags(request[48]),
              let paymentID = tags["PI"], Self.isReference(paymentID), let number = request[2], let expiry = request[14],
              let stan = request[11], let time = request[7], let rrn = request[37] else { return answer(Code.formatError) }
        let transmission = CardAuthorisation.Transmission(stan: stan, time: time)
        if var existing = cards.authorisations[paymentID] {
            // A repeat: the first answer again (or the same wait), never a second hold.
            if !existing.transmissions.contains(transmission) && existing.transmissions.count < CardBooks.maximumTransmissions {
                existing.transmissions.append(transmission)
            }
            defer { cards.authorisations[paymentID] = existing }
            guard let code = existing.responseCode else {
                return .awaitIssuer(paymentID: paymentID, epoch: epoch, afterMs: max(0, (existing.issuerDue ?? uptime) - uptime))
            }
            existing.answers.append("0110:" + code)
            return answer(code, existing.authCode)
        }
        guard cards.authorisations.count < CardBooks.maximumAuthorisations else { return answer(Code.systemMalfunction) }
        var record = CardAuthorisation(paymentID: paymentID, cardNumber: number, amount: amount, rrn: rrn, createdAt: now,
                                       transmissions: [transmission], status: .declined)
        let decision = networkDecides(record, expiry: expiry,
                                      authentication: CardAuthenticationValue(cavv: tags["AV"], eci: tags["EC"], id: tags["AI"]), now: now)
        cards.opened(record)
        switch decision {
        case .answered(let code, let authCode):
            record.responseCode = code
            record.authCode = authCode
            record.status = code == Code.approved ? .approved : .declined
            record.answers.append("0110:" + code)
            cards.authorisations[paymentID] = record
            return answer(code, authCode)
        case .issuerAnswersAfter(let milliseconds):
            record.status = .pending
            record.issuerDue = uptime + milliseconds
            cards.authorisations[paymentID] = record
            return .awaitIssuer(paymentID: paymentID, epoch: epoch, afterMs: milliseconds)
        }
    }

    enum Decision: Sendable {
        case answered(String, authCode: String?)
        case issuerAnswersAfter(Int64)
    }

    /// The network's checks (card known, expiry, 3-D Secure), then the issuer's, for an
    /// authorisation arriving by either route (`record.via`): the acquirer's 0100, or alphapay's
    /// own acquiring (docs/CARDS.md §4). A decline drawn from the faults is the route's
    /// (`acquirer` or `alphapay`) `decline_rate`.
    mutating func networkDecides(_ record: CardAuthorisation, expiry: String, authentication: CardAuthenticationValue,
                                 now: Int64) -> Decision {
        guard CardMask.isLuhnValid(record.cardNumber), let card = TestCards.card(record.cardNumber) else {
            return .answered(Code.invalidCard, authCode: nil)
        }
        if Self.isPast(card.expiry, now: now) || expiry != card.expiry { return .answered(Code.expiredCard, authCode: nil) }
        let authenticated = acs.vouches(card: card.number, amount: record.amount, cavv: authentication.cavv, eci: authentication.eci,
                                        authenticationID: authentication.id)
        if !authenticated && (card.domestic || authentication.cavv != nil) { return .answered(Code.securityViolation, authCode: nil) }
        switch card.behaviour {
        case .invalidAtIssuer: return .answered(Code.invalidCard, authCode: nil)
        case .doNotHonour: return .answered(Code.doNotHonour, authCode: nil)
        case .onlineDisabled: return .answered(Code.notPermitted, authCode: nil)
        case .technicalError: return .answered(Code.systemMalfunction, authCode: nil)
        case .timeOut: return .issuerAnswersAfter(cards.timing.issuerTimeoutMs)
        case .approveLate: return .issuerAnswersAfter(cards.timing.lateAnswerMs)
        case .approve, .cancelAtACS, .failAuthentication:
            let (code, authCode) = issuerDecides(card, amount: record.amount, paymentID: record.paymentID, faults: record.via.faultRail)
            return .answered(code, authCode: authCode)
        }
    }

    /// The issuer's own checks; an approval puts a hold on the card, keyed by the payment id.
    /// A payment id already holding on this card (the other route authorised it) is refused
    /// with 96 rather than held twice under one key.
    private mutating func issuerDecides(_ card: TestCard, amount: Int64, paymentID: String, faults rail: Rail) -> (String, String?) {
        var account = cards.account(card)
        if account.holds[paymentID] != nil { return (Code.systemMalfunction, nil) }
        if amount > account.transactionLimit { return (Code.exceedsLimit, nil) }
        if amount > account.available { return (Code.insufficientFunds, nil) }
        if random.chance(faultConfig(rail).declineRate) { return (Code.doNotHonour, nil) }
        account.holds[paymentID] = amount
        precondition(account.available >= 0, "Invalid state: card \(card.masked) held over its balance")
        cards.accounts[card.number] = account
        return (Code.approved, newAuthCode())
    }

    /// Settles a pending authorisation (a slow issuer's answer falling due), by either route:
    /// 91 for the card that times out, else the issuer's decision; a reversal (void) recorded
    /// meanwhile releases an approval's hold at once (`late_reversed`). A settled one is left as is.
    mutating func settlePending(_ record: inout CardAuthorisation) {
        guard record.status == .pending else { return }
        guard let card = TestCards.card(record.cardNumber) else {
            preconditionFailure("Invalid state: a pending authorisation on an unknown card \(CardMask.mask(record.cardNumber))")
        }
        let (code, authCode) = card.behaviour == .timeOut
            ? (Code.issuerUnavailable, nil) : issuerDecides(card, amount: record.amount, paymentID: record.paymentID, faults: record.via.faultRail)
        record.responseCode = code
        record.authCode = authCode
        record.issuerDue = nil
        if code != Code.approved {
            record.status = .declined
        } else if record.reversalRequested {
            cards.accounts[card.number]?.holds[record.paymentID] = nil
            record.status = .lateReversed
            record.reversedAmount = record.amount
        } else {
            record.status = .approved
        }
    }

    /// Moves an approved authorisation's hold to a posted debit of `amount` (at most the amount
    /// held), releasing the rest. Answers the capture's auth code.
    mutating func postCapture(_ record: inout CardAuthorisation, amount: Int64) -> String {
        precondition(record.status == .approved && record.captured == 0 && amount >= 1 && amount <= record.amount,
                     "Invalid state: capture of \(amount) on \(record.paymentID) (\(record.status.rawValue))")
        guard let card = TestCards.card(record.cardNumber) else { preconditionFailure("Invalid state: an approval on an unknown card") }
        var account = cards.account(card)
        guard account.holds.removeValue(forKey: record.paymentID) == record.amount else {
            preconditionFailure("Invalid state: approved \(record.paymentID) holds no \(record.amount) on \(card.masked)")
        }
        account.balance -= amount
        precondition(account.available >= 0, "Invalid state: capture of \(record.paymentID) overdraws \(card.masked)")
        cards.accounts[card.number] = account
        record.captured = amount
        let authCode = record.authCode ?? newAuthCode()
        record.captureAuthCode = authCode
        return authCode
    }

    /// Credits the card with a refund of a captured authorisation (at most what is captured and
    /// not yet refunded).
    mutating func postRefund(_ record: inout CardAuthorisation, refundID: String, amount: Int64) -> CardRefund {
        precondition(record.captured > 0 && amount >= 1 && amount <= record.captured - record.refunded,
                     "Invalid state: refund of \(amount) on \(record.paymentID)")
        guard let card = TestCards.card(record.cardNumber) else { preconditionFailure("Invalid state: a capture on an unknown card") }
        var account = cards.account(card)
        account.balance += amount
        cards.accounts[card.number] = account
        let refund = CardRefund(refundID: refundID, amount: amount, authCode: newAuthCode())
        record.refunds.append(refund)
        precondition(record.refunded <= record.captured, "Invalid state: \(record.paymentID) refunded over its capture")
        return refund
    }

    /// Releases an approved, uncaptured authorisation's hold (a reversal, or a void).
    mutating func releaseHold(_ record: inout CardAuthorisation) {
        precondition(record.status == .approved && record.captured == 0, "Invalid state: releasing \(record.paymentID)")
        cards.accounts[record.cardNumber]?.holds[record.paymentID] = nil
        record.reversalRequested = true
        record.status = .reversed
        record.reversedAmount = record.amount
    }

    /// A slow issuer's answer falling due: settles the authorisation (once: a repeat that waited
    /// too finds it settled) and answers `request`. A reversal recorded meanwhile releases an
    /// approval's hold at once. Nil after a reset.
    mutating func issuerAnswered(paymentID: String, epoch: UInt64, request: ISO8583Message) -> ISO8583Message? {
        guard epoch == self.epoch, var record = cards.authorisations[paymentID] else { return nil }
        settlePending(&record)
        guard let code = record.responseCode else { preconditionFailure("Invalid state: \(paymentID) settled without a code") }
        record.answers.append("0110:" + code)
        cards.authorisations[paymentID] = record
        return AcquirerProfile.answer(to: request, code: code, authCode: record.authCode)
    }

    // MARK: 0200

    private mutating func financial(_ request: ISO8583Message) -> ISO8583Message? {
        func answer(_ code: String, _ authCode: String? = nil) -> ISO8583Message? {
            AcquirerProfile.answer(to: request, code: code, authCode: authCode)
        }
        let isRefund = request[3] == AcquirerProfile.refundCode
        guard isRefund || request[3] == AcquirerProfile.authorisationCode, let amount = AcquirerProfile.amount(request[4]),
              request[49] == AcquirerProfile.rupeeCurrency, let tags = AcquirerProfile.tags(request[48]),
              let paymentID = tags["PI"], Self.isReference(paymentID), request[11] != nil, request[7] != nil, request[37] != nil,
              let original = AcquirerProfile.OriginalData(request[90]) else { return answer(Code.formatError) }
        let refundID = isRefund ? tags["RI"] : nil
        if isRefund { guard let refundID, Self.isReference(refundID) else { return answer(Code.formatError) } }
        guard var record = cards.authorisations[paymentID], Self.names(record, original, number: request[2]) else {
            return answer(Code.originalNotFound)
        }
        defer { cards.authorisations[paymentID] = record }
        func recorded(_ code: String, _ authCode: String? = nil) -> ISO8583Message? {
            record.answers.append("0210:" + code)
            return answer(code, authCode)
        }
        if let refundID {
            if let done = record.refund(refundID) { return recorded(Code.approved, done.authCode) }
            guard record.captured > 0, amount <= record.captured - record.refunded,
                  record.refunds.count < CardBooks.maximumRefundsPerPayment else { return recorded(Code.invalidTransaction) }
            let refund = postRefund(&record, refundID: refundID, amount: amount)
            return recorded(Code.approved, refund.authCode)
        }
        if let done = record.captureAuthCode { return recorded(Code.approved, done) }
        guard record.status == .approved, amount <= record.amount else { return recorded(Code.invalidTransaction) }
        return recorded(Code.approved, postCapture(&record, amount: amount))
    }

    // MARK: 0400 / 0420

    private mutating func reverse(_ request: ISO8583Message) -> ISO8583Message? {
        func answer(_ code: String) -> ISO8583Message? { AcquirerProfile.answer(to: request, code: code) }
        guard let amount = AcquirerProfile.amount(request[4]), let tags = AcquirerProfile.tags(request[48]),
              let paymentID = tags["PI"], Self.isReference(paymentID), request[11] != nil, request[7] != nil,
              let original = AcquirerProfile.OriginalData(request[90]) else { return answer(Code.formatError) }
        guard var record = cards.authorisations[paymentID], Self.names(record, original, number: request[2]) else {
            return answer(Code.originalNotFound)
        }
        defer { cards.authorisations[paymentID] = record }
        let code: String
        if amount != record.amount {
            code = Code.invalidTransaction
        } else {
            switch record.status {
            case .pending, .declined, .reversed, .lateReversed:
                record.reversalRequested = true
                code = Code.approved
            case .approved where record.captured > 0:
                code = Code.invalidTransaction
            case .approved:
                releaseHold(&record)
                code = Code.approved
            }
        }
        record.answers.append(request.mti + ":" + code)
        return answer(code)
    }

    // MARK: Helpers

    /// Whether field 90 names this authorisation (an 0100 with one of its STANs and times), and
    /// field 2, when sent, its card.
    private static func names(_ record: CardAuthorisation, _ original: AcquirerProfile.OriginalData, number: String?) -> Bool {
        original.mti == "0100" && record.transmissions.contains(.init(stan: original.stan, time: original.transmission))
            && (number == nil || number == record.cardNumber)
    }

    /// Kosh's ids (`pay_…`, `rfnd_…`): 1…64 of `A-Z a-z 0-9 . _ -`.
    static func isReference(_ value: String) -> Bool { (try? Validate.identifier(value, field: "PI")) != nil }

    /// Whether an expiry (YYMM) is over at `now`: after the last day of its month, UTC.
    static func isPast(_ expiry: String, now: Int64) -> Bool {
        guard expiry.utf8.count == 4, let yy = Int(expiry.prefix(2)), let mm = Int(expiry.suffix(2)), (1...12).contains(mm) else {
            return true
        }
        let (year, month) = CalendarMonth.of(unixMilliseconds: now)
        return (2000 + yy, mm) < (year, month)
    }

    /// Six letters and digits from the seeded identifiers.
    mutating func newAuthCode() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String((0..<6).map { _ in alphabet[Int(identifiers.next(below: UInt64(alphabet.count)))] })
    }
}

/// The calendar month of a moment, UTC (days-to-civil, integers only).
enum CalendarMonth {
    static func of(unixMilliseconds: Int64) -> (year: Int, month: Int) {
        let days = Int((unixMilliseconds - (unixMilliseconds < 0 ? 86_399_999 : 0)) / 86_400_000)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month)
    }
}
