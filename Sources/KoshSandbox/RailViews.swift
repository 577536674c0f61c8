import KoshJSON
/// Each rail's own vocabulary for the same underlying UPI transaction (docs/SANDBOX.md).
enum RailViews {
    /// The body a rail POSTs to the callback URL when a transaction is final.
    static func callback(_ t: Transaction) -> JSON {
        switch t.key.rail {
        case .upiSwitch:
            return switchStatus(t).adding([("event", .string("upi.txn.final"))])
        case .alphapay:
            let event = t.status == .success ? "payment.authorized" : "payment.failed"
            return .object([("event", .string(event)), ("payload", alphapayPayment(t))])
        case .betapay:
            return betapayStatus(t)
        case .acquirer, .acs, .netbanking, .wallets:
            preconditionFailure("Invalid state: a UPI callback on the rail \(t.key.rail)")
        }
    }

    // MARK: UPI switch

    static func switchStatus(_ t: Transaction) -> JSON {
        let status = JSON.object([
            ("txn_id", .string(t.key.id)),
            ("rrn", .string(t.rrn)),
            ("status", .string(t.status.rawValue)),
            ("response_code", .optional(t.responseCode?.rawValue)),
            ("response_message", .optional(t.responseCode?.message)),
            ("amount", .int(t.amount)),
            ("payer_vpa", .optional(t.payer?.address)),
            ("payer_name", .optional(t.payer?.payerName)),
            ("mode", .string(t.mode.rawValue)),
        ])
        // A payer-initiated payment also names whom it paid and the payee's reference.
        guard t.mode == .qr else { return status }
        return status.adding([("payee_vpa", .optional(t.payee)), ("tr", .optional(t.reference))])
    }

    /// The answer to a collect or intent create, and to its idempotent repeat.
    static func switchAccepted(_ t: Transaction) -> JSON {
        .object([("txn_id", .string(t.key.id)), ("rrn", .string(t.rrn)), ("status", .string(TxnStatus.pending.rawValue))])
    }

    // MARK: alphapay

    /// 1.80 % of the amount, rounded half up to the paisa.
    static let alphapayFeeBasisPoints: Int64 = 180

    static func alphapayFee(_ amount: Int64) -> Int64 { Amounts.share(amount, basisPoints: alphapayFeeBasisPoints) }

    static func alphapayStatus(_ t: Transaction) -> String {
        switch t.status {
        case .pending: "processing"
        case .success: "authorized"
        case .failure, .expired: "failed"
        }
    }

    static func alphapayError(_ code: ResponseCode?) -> (code: String, description: String)? {
        switch code {
        case nil, .success?: nil
        case .payerDeclined?: ("PAYER_DECLINED", "The payer declined the collect request")
        case .collectExpired?: ("COLLECT_EXPIRED", "The payer did not respond before the collect request expired")
        case .insufficientFunds?: ("INSUFFICIENT_FUNDS", "The payer's account has insufficient funds")
        case .perTransactionLimit?: ("LIMIT_EXCEEDED", "The payment exceeds the per-transaction UPI limit")
        case .dailyLimit?: ("LIMIT_EXCEEDED", "The payment exceeds the payer's daily UPI limit")
        case .bankError?: ("BANK_ERROR", "The payer's bank could not debit the account")
        }
    }

    static func alphapayCreated(_ t: Transaction) -> JSON {
        .object([("id", .string(t.providerID)), ("reference", .string(t.key.id)), ("amount", .int(t.amount)),
                 ("status", .string("processing")), ("fee", .int(alphapayFee(t.amount)))])
    }

    static func alphapayPayment(_ t: Transaction) -> JSON {
        let error = alphapayError(t.responseCode)
        return .object([
            ("id", .string(t.providerID)),
            ("reference", .string(t.key.id)),
            ("amount", .int(t.amount)),
            ("status", .string(alphapayStatus(t))),
            ("error_code", .optional(error?.code)),
            ("error_description", .optional(error?.description)),
            ("fee", .int(alphapayFee(t.amount))),
            ("vpa", .optional(t.payer?.address)),
        ])
    }

    // MARK: betapay

    static func betapayResult(_ t: Transaction) -> (status: String, code: String, message: String) {
        switch t.responseCode {
        case nil: ("INITIATED", "0000", "Transaction initiated")
        case .success?: ("SUCCESS", "0000", "Transaction successful")
        case .payerDeclined?: ("FAILURE", "E205", "Payer declined")
        case .insufficientFunds?: ("FAILURE", "E206", "Insufficient funds")
        case .perTransactionLimit?, .dailyLimit?: ("FAILURE", "E207", "Limit exceeded")
        case .collectExpired?: ("FAILURE", "E208", "Collect request expired")
        case .bankError?: ("FAILURE", "E500", "Bank error")
        }
    }

    static func betapayStatus(_ t: Transaction) -> JSON {
        let result = betapayResult(t)
        return .object([
            ("merchantTxnId", .string(t.key.id)),
            ("betaTxnId", .string(t.providerID)),
            ("txnAmount", .string(Amounts.rupees(fromPaise: t.amount))),
            ("txnStatus", .string(result.status)),
            ("resultCode", .string(result.code)),
            ("resultMsg", .string(result.message)),
        ])
    }
}
