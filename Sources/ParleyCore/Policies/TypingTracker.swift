/// Who is typing in one channel. A `typing_start` lasts `timeout` unless renewed; clients
/// that vanish without `typing_stop` stop "typing" by themselves.
///
/// Each event returns whether the user's visible state changed (so the shell broadcasts
/// only changes); `expire` returns users whose typing timed out.
public struct TypingTracker: Sendable {
    public let timeout: Duration
    private var expiries: [String: Moment] = [:]

    public init(timeout: Duration = .seconds(5)) { self.timeout = timeout }

    public var typingUsers: [String] { expiries.keys.sorted() }

    /// Returns true when the user was not typing before.
    public mutating func start(_ user: String, at now: Moment) -> Bool {
        expiries.updateValue(now + timeout, forKey: user) == nil
    }

    /// Returns true when the user was typing.
    public mutating func stop(_ user: String) -> Bool {
        expiries.removeValue(forKey: user) != nil
    }

    /// Users whose typing timed out at `now`, in name order.
    public mutating func expire(at now: Moment) -> [String] {
        let expired = expiries.filter { $0.value <= now }.map(\.key).sorted()
        for user in expired { expiries[user] = nil }
        return expired
    }

    /// When `expire` next has something to do.
    public var nextDeadline: Moment? { expiries.values.min() }
}
