/// The node's backends as the gateway sees them, without naming an adapter: a readiness
/// check, a counter for `/metrics`, and shutdown. The executable's wiring fills it in.
public struct BackendHandles: Sendable {
    /// Each backend's answer within the timeout: its name → nil when it answered, else why not.
    public var check: @Sendable (Duration) async -> [String: String?]
    /// Statements sent to PostgreSQL so far.
    public var statementsSent: @Sendable () -> Int
    public var shutdown: @Sendable () async -> Void

    public init(check: @escaping @Sendable (Duration) async -> [String: String?], statementsSent: @escaping @Sendable () -> Int,
                shutdown: @escaping @Sendable () async -> Void) {
        self.check = check
        self.statementsSent = statementsSent
        self.shutdown = shutdown
    }
}
