import KoshCore

/// `/v1/customers` and their saved cards (`/v1/customers/:id/tokens`).
extension PaymentFlows {
    /// `POST /v1/customers`: a customer is unique by email and contact per merchant. With
    /// `fail_existing` the second one is refused; without, the existing one is answered.
    public func createCustomer(merchant: Merchant, _ input: NewCustomer) async throws -> Customer {
        try await store.transaction { tx in
            if let existing = try await tx.customer(merchantID: merchant.id, email: input.email, contact: input.contact) {
                guard !input.failExisting else {
                    throw KoshError.badRequest("Customer already exists for the merchant", field: "contact", reason: "customer_already_exists")
                }
                return existing
            }
            let customer = Customer(id: newID(.customer), merchantID: merchant.id, name: input.name, email: input.email, contact: input.contact,
                                    gstin: input.gstin, notes: input.notes, createdAt: nowSeconds)
            try await tx.insertCustomer(customer)
            return customer
        }
    }

    public func customer(id: ID<Customer>, merchantID: ID<Merchant>) async throws -> Customer {
        guard let customer = try await store.transaction({ tx in try await tx.customer(id: id, merchantID: merchantID) }) else {
            throw KoshError.notFound()
        }
        return customer
    }

    /// `PUT /v1/customers/:id`: the fields given replace the stored ones; email and contact
    /// must stay unique for the merchant.
    public func editCustomer(id: ID<Customer>, merchantID: ID<Merchant>, name: String?, email: String?, contact: String?, gstin: String?,
                             notes: Notes?) async throws -> Customer {
        try await store.transaction { tx in
            guard var customer = try await tx.customer(id: id, merchantID: merchantID) else { throw KoshError.notFound() }
            if let name { customer.name = name }
            if let email { customer.email = email }
            if let contact { customer.contact = contact }
            if let gstin { customer.gstin = gstin }
            if let notes { customer.notes = notes }
            if let other = try await tx.customer(merchantID: merchantID, email: customer.email, contact: customer.contact), other.id != id {
                throw KoshError.badRequest("Customer already exists for the merchant", field: "contact", reason: "customer_already_exists")
            }
            try await tx.updateCustomer(customer)
            return customer
        }
    }

    public func customers(merchantID: ID<Merchant>, page: Page) async throws -> [Customer] {
        try await store.transaction { tx in try await tx.customers(merchantID: merchantID, page: page) }
    }

    public func tokens(customerID: ID<Customer>, merchantID: ID<Merchant>) async throws -> [CardToken] {
        try await store.transaction { tx in
            guard try await tx.customer(id: customerID, merchantID: merchantID) != nil else { throw KoshError.notFound() }
            return try await tx.tokens(customerID: customerID, merchantID: merchantID)
        }
    }

    public func token(id: ID<CardToken>, customerID: ID<Customer>, merchantID: ID<Merchant>) async throws -> CardToken {
        guard let token = try await store.transaction({ tx in try await tx.token(id: id, merchantID: merchantID) }),
              token.customerID == customerID, token.isActive else { throw KoshError.notFound() }
        return token
    }

    /// `DELETE /v1/customers/:id/tokens/:token`: the token stops working and the vault purges
    /// the card (nothing keeps it any more). Deleting twice answers 404 the second time.
    public func deleteToken(id: ID<CardToken>, customerID: ID<Customer>, merchantID: ID<Merchant>) async throws {
        let cards = try requireCards()
        let token = try await store.transaction { tx in
            guard var token = try await tx.token(id: id, merchantID: merchantID), token.customerID == customerID, token.isActive else {
                throw KoshError.notFound()
            }
            token.deletedAt = nowSeconds
            try await tx.updateToken(token)
            return token
        }
        // Card data is kept only while needed: a deleted token's card goes back under the
        // payment retention (4 days), so a refund of a recent payment can still reach the network.
        do {
            try await cards.vault.setRetention(token: token.card.vaultToken,
                                               .until(UnixSeconds(nowSeconds.value + cards.settings.retentionSeconds)))
        } catch CardVaultError.notFound, CardVaultError.purged {
            // Already gone.
        }
    }

    /// Saves an authorised payment's card for its customer (`save: 1`), in `tx`: the vault keeps
    /// it as card-on-file (done by the caller before the transaction), Kosh keeps the token.
    func saveCard(_ payment: Payment, for customerID: ID<Customer>, _ tx: any StoreTransaction) async throws {
        guard let card = payment.card else { return }
        try await tx.insertToken(CardToken(id: newID(.token), merchantID: payment.merchantID, customerID: customerID, card: card,
                                           createdAt: nowSeconds, usedAt: nowSeconds))
    }
}
