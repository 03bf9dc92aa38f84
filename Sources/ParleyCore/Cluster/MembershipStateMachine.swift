/// One node's heartbeat as read from the cluster registry.
public struct Heartbeat: Sendable, Hashable {
    public let node: NodeIdentity
    /// When the heartbeat was written, on the reader's monotonic timeline.
    public let at: Moment

    public init(node: NodeIdentity, at: Moment) {
        self.node = node
        self.at = at
    }
}

/// A change in the set of live nodes.
public enum MembershipChange: Sendable, Hashable {
    case joined(NodeIdentity)
    case left(NodeIdentity)
    /// Same name, new incarnation: the old one is gone, whatever it held is void.
    case restarted(old: NodeIdentity, new: NodeIdentity)
}

/// From heartbeat observations to the set of live nodes.
///
/// State: for each node name, the incarnation last seen and when. A node is live until
/// `ttl` after its last heartbeat. Events: `observe` (heartbeats read), `tick` (time passes).
/// Each returns the changes to act on. Invariant: at most one incarnation per name is live;
/// a heartbeat of an older incarnation after a newer one is ignored only if it is older in time.
public struct MembershipStateMachine: Sendable {
    public let ttl: Duration
    private var entries: [String: Heartbeat] = [:]

    public init(ttl: Duration) { self.ttl = ttl }

    /// The live nodes, sorted.
    public var live: [NodeIdentity] { entries.values.map(\.node).sorted() }

    /// The live node names, for the ring.
    public var liveNames: [String] { entries.keys.sorted() }

    /// Records heartbeats seen at `now` and returns joins, restarts and expiries.
    public mutating func observe(_ heartbeats: [Heartbeat], at now: Moment) -> [MembershipChange] {
        var changes: [MembershipChange] = []
        for heartbeat in heartbeats.sorted(by: { $0.at < $1.at }) where heartbeat.at + ttl > now {
            let name = heartbeat.node.name
            if let known = entries[name] {
                if known.node == heartbeat.node {
                    if heartbeat.at > known.at { entries[name] = heartbeat }
                } else if heartbeat.at >= known.at {
                    entries[name] = heartbeat
                    changes.append(.restarted(old: known.node, new: heartbeat.node))
                }
            } else {
                entries[name] = heartbeat
                changes.append(.joined(heartbeat.node))
            }
        }
        return changes + tick(at: now)
    }

    /// Expires nodes whose last heartbeat is `ttl` old.
    public mutating func tick(at now: Moment) -> [MembershipChange] {
        let expired = entries.values.filter { $0.at + ttl <= now }.map(\.node).sorted()
        for node in expired { entries[node.name] = nil }
        return expired.map { .left($0) }
    }

    /// When the next node would expire if no heartbeat arrives.
    public var nextExpiry: Moment? { entries.values.map { $0.at + ttl }.min() }
}
