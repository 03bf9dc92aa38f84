/// What the cluster bus hands this node: a message on a topic it subscribed to, a message in
/// its inbox, or word that the bus came back after a loss (messages in between are gone:
/// recover by `seq`).
public enum BusDelivery: Sendable, Hashable {
    case topic(String, [UInt8])
    case inbox([UInt8])
    case reconnected
}

/// Where a bus message goes: every node subscribed to a topic, or one node's inbox.
public enum BusAddress: Sendable, Hashable {
    case topic(String)
    case node(String)
}

/// The cross-node bus (DESIGN §3): publish to a topic, send to one node's inbox. At most once:
/// what must not be lost is recovered from the log by `seq`, never trusted to the bus.
public protocol ClusterBus: Sendable {
    /// Hands everything for this node to `deliver`, in the order the bus delivered it (its
    /// inbox and its topics), until `shutdown`.
    func run(_ deliver: @Sendable (BusDelivery) async -> Void) async
    /// Starts listening to this node's inbox; returns once the bus confirmed it.
    func listen(inbox node: String) async throws
    /// Sends each message to its address (every node subscribed to a topic, or one node's
    /// inbox), in order, in one round trip.
    func send(_ batch: [(BusAddress, [UInt8])]) async throws
    /// Subscribes to `topic`; returns once the bus confirmed it (at once if it already had).
    func subscribe(topic: String) async throws
    /// Stops receiving `topic`.
    func unsubscribe(topic: String)
    /// Topics subscribed now.
    var topics: Set<String> { get }
    func shutdown()
}
