/// One live node as the cluster registry knows it.
public struct NodeRecord: Sendable, Hashable {
    public let identity: NodeIdentity
    /// Where its HTTP endpoint listens (`host:port`).
    public let address: String
    /// When it started, milliseconds since the Unix epoch (informational: liveness is judged by
    /// the registry's TTLs, never by comparing two machines' clocks).
    public let startedAt: Int64
    /// Set while the node drains (SIGTERM): it is live — it still answers for the leases it
    /// holds until it has handed them off — but no ring places anything on it.
    public var draining: Bool

    public init(identity: NodeIdentity, address: String, startedAt: Int64, draining: Bool = false) {
        self.identity = identity
        self.address = address
        self.startedAt = startedAt
        self.draining = draining
    }

    /// `incarnation|address|startedAt`, with `|draining` while it drains: the stored value of a
    /// heartbeat.
    public var storedValue: String { "\(identity.incarnation)|\(address)|\(startedAt)" + (draining ? "|draining" : "") }

    public init?(name: String, storedValue: String) {
        let parts = storedValue.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3 || (parts.count == 4 && parts[3] == "draining"), !parts[0].isEmpty, let started = Int64(parts[2])
        else { return nil }
        self.init(identity: NodeIdentity(name: name, incarnation: String(parts[0])), address: String(parts[1]), startedAt: started,
                  draining: parts.count == 4)
    }
}

/// The answer to a heartbeat.
public enum HeartbeatOutcome: Sendable, Hashable {
    /// Extended: this incarnation holds its name.
    case renewed
    /// Written afresh: the name was free (the first heartbeat, or the previous one lapsed).
    case registered
    /// Another live incarnation holds the name.
    case nameTaken(by: String)
}

/// The cluster registry (DESIGN §3): each node's heartbeat under its name, with a TTL kept by
/// the store; a name belongs to one live incarnation at a time.
public protocol MembershipStore: Sendable {
    /// Writes this node's heartbeat unless another incarnation holds the name.
    func heartbeat(_ node: NodeRecord, ttl: Duration) async throws -> HeartbeatOutcome
    /// The nodes whose heartbeat has not expired.
    func live() async throws -> [NodeRecord]
    /// Removes this node's heartbeat (a graceful stop) if it still holds the name.
    func leave(_ node: NodeIdentity) async throws
}
