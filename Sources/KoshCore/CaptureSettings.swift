/// What happens to a payment once it is authorised (issue 14, Razorpay's capture settings):
/// captured at once (`payment_capture: 1` on its order, or the merchant's default), or left for
/// the merchant to capture within a window, after which Kosh releases it — a card's
/// authorisation voided, any other method's money refunded — as Razorpay auto-refunds
/// payments not captured in time.
public struct CaptureSettings: Sendable, Hashable {
    /// The merchant's default for orders that do not say.
    public var automatic: Bool
    /// How long an authorised payment waits for a manual capture (seconds).
    public var windowSeconds: Int64

    /// Razorpay's: three days.
    public static let defaultWindowSeconds: Int64 = 3 * 86_400
    /// A window from one hour to thirty days.
    public static let windowRange: ClosedRange<Int64> = 3_600...(30 * 86_400)

    public init(automatic: Bool = false, windowSeconds: Int64 = CaptureSettings.defaultWindowSeconds) {
        precondition(Self.windowRange.contains(windowSeconds), "capture window out of range")
        self.automatic = automatic
        self.windowSeconds = windowSeconds
    }

    /// What to do with a payment authorised at `authorizedAt`, and when: `order` is its order's
    /// `payment_capture` (nil: the merchant's default).
    public func onAuthorization(order: Bool?, authorizedAt: UnixMillis) -> (action: CaptureAction, dueAt: UnixMillis) {
        (order ?? automatic) ? (.capture, authorizedAt) : (.release, authorizedAt + windowSeconds * 1_000)
    }
}

/// What the janitor does with an authorised payment once its `captureDueAt` has passed.
public enum CaptureAction: String, Sendable, Hashable {
    /// Capture it in full (auto-capture).
    case capture
    /// Release it: the merchant did not capture it within the window.
    case release
}
