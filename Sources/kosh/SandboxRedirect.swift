import ArgumentParser

/// `kosh sandbox redirect approve|decline ID`: plays the customer on a bank's or wallet's page
/// (docs/REDIRECT_METHODS.md) without a browser, and prints the payment as it now is.
struct SandboxRedirect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redirect",
        abstract: "Approve or decline a netbanking or wallet payment as its customer: kosh sandbox redirect approve pay_…")

    enum Decision: String, ExpressibleByArgument, CaseIterable {
        case approve, decline
    }

    @Argument(help: "approve or decline") var decision: Decision
    @Argument(help: "The bank's or wallet's payment id (nb_…, wl_…) or Kosh's reference (pay_…)") var id: String
    @OptionGroup var target: SandboxTarget

    func validate() throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-".utf8)
        guard (1...64).contains(id.utf8.count), id.utf8.allSatisfy(allowed.contains) else {
            throw ValidationError("an id is 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-' (nb_…, wl_… or pay_…)")
        }
    }

    func run() async throws {
        try await target.send(.POST, "/sandbox/v1/redirect/\(id)/\(decision.rawValue)", body: nil)
    }
}
