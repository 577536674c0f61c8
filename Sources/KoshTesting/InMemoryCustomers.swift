import KoshCore

/// Customers and tokens of the in-memory store, as `CustomersSQL` keeps them.
extension InMemoryTransaction {
    func insertCustomer(_ customer: Customer) async throws {
        guard state.customers[customer.id] == nil else { throw InMemoryStoreError(description: "duplicate customer \(customer.id)") }
        state.customers[customer.id] = customer
        state.stamp(customer.id.rawValue)
    }

    func customer(id: ID<Customer>, merchantID: ID<Merchant>) async throws -> Customer? {
        state.customers[id].flatMap { $0.merchantID == merchantID ? $0 : nil }
    }

    func customer(merchantID: ID<Merchant>, email: String?, contact: String?) async throws -> Customer? {
        state.customers.values.filter { $0.merchantID == merchantID && ($0.email ?? "") == (email ?? "") && ($0.contact ?? "") == (contact ?? "") }
            .min { ($0.createdAt.value, $0.id.rawValue) < ($1.createdAt.value, $1.id.rawValue) }
    }

    func updateCustomer(_ customer: Customer) async throws { state.customers[customer.id] = customer }

    func customers(merchantID: ID<Merchant>, page: Page) async throws -> [Customer] {
        state.listed(state.customers.values.filter { $0.merchantID == merchantID }, id: \.id.rawValue, createdAt: \.createdAt.value, page: page)
    }

    func insertToken(_ token: CardToken) async throws { state.tokens[token.id] = token }

    func token(id: ID<CardToken>, merchantID: ID<Merchant>) async throws -> CardToken? {
        state.tokens[id].flatMap { $0.merchantID == merchantID ? $0 : nil }
    }

    func updateToken(_ token: CardToken) async throws { state.tokens[token.id] = token }

    func tokens(customerID: ID<Customer>, merchantID: ID<Merchant>) async throws -> [CardToken] {
        state.tokens.values.filter { $0.customerID == customerID && $0.merchantID == merchantID && $0.isActive }
            .sorted { ($0.createdAt.value, $0.id.rawValue) > ($1.createdAt.value, $1.id.rawValue) }
    }
}
