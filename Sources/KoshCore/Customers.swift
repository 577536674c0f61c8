/// Customers and their saved cards (issue 13): Razorpay's `cust_…` and `token_…`. A token
/// refers to a card entity and, through it, to the vault's card-on-file entry; Kosh never holds
/// the number.

public struct Customer: Sendable, Hashable {
    public let id: ID<Customer>
    public let merchantID: ID<Merchant>
    public var name: String?
    public var email: String?
    public var contact: String?
    public var gstin: String?
    public var notes: Notes
    public let createdAt: UnixSeconds

    public init(id: ID<Customer>, merchantID: ID<Merchant>, name: String?, email: String?, contact: String?, gstin: String?, notes: Notes,
                createdAt: UnixSeconds) {
        self.id = id
        self.merchantID = merchantID
        self.name = name
        self.email = email
        self.contact = contact
        self.gstin = gstin
        self.notes = notes
        self.createdAt = createdAt
    }
}

public struct NewCustomer: Sendable {
    public var name: String?
    public var email: String?
    public var contact: String?
    public var gstin: String?
    public var notes: Notes
    /// Razorpay's `fail_existing`: true refuses a customer whose email and contact are taken;
    /// false answers the existing one.
    public var failExisting: Bool

    public init(name: String?, email: String?, contact: String?, gstin: String?, notes: Notes, failExisting: Bool) {
        self.name = name
        self.email = email
        self.contact = contact
        self.gstin = gstin
        self.notes = notes
        self.failExisting = failExisting
    }
}

/// A saved card (`token_…`): the card-on-file the customer pays with again.
public struct CardToken: Sendable, Hashable {
    public let id: ID<CardToken>
    public let merchantID: ID<Merchant>
    public let customerID: ID<Customer>
    public let card: Card
    public let createdAt: UnixSeconds
    public var usedAt: UnixSeconds?
    public var deletedAt: UnixSeconds?

    public init(id: ID<CardToken>, merchantID: ID<Merchant>, customerID: ID<Customer>, card: Card, createdAt: UnixSeconds,
                usedAt: UnixSeconds? = nil, deletedAt: UnixSeconds? = nil) {
        self.id = id
        self.merchantID = merchantID
        self.customerID = customerID
        self.card = card
        self.createdAt = createdAt
        self.usedAt = usedAt
        self.deletedAt = deletedAt
    }

    public var isActive: Bool { deletedAt == nil }
}

/// Storage of customers and tokens; part of every store transaction.
public protocol CustomerRecords {
    func insertCustomer(_ customer: Customer) async throws
    func customer(id: ID<Customer>, merchantID: ID<Merchant>) async throws -> Customer?
    /// The merchant's customer with this email and contact (Razorpay's uniqueness).
    func customer(merchantID: ID<Merchant>, email: String?, contact: String?) async throws -> Customer?
    func updateCustomer(_ customer: Customer) async throws
    func customers(merchantID: ID<Merchant>, page: Page) async throws -> [Customer]
    func insertToken(_ token: CardToken) async throws
    func token(id: ID<CardToken>, merchantID: ID<Merchant>) async throws -> CardToken?
    func updateToken(_ token: CardToken) async throws
    /// A customer's active tokens, newest first.
    func tokens(customerID: ID<Customer>, merchantID: ID<Merchant>) async throws -> [CardToken]
}
