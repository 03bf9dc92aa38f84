import Logging
import ParleyCore
import ServiceLifecycle
import Synchronization

/// This node's heartbeat, the set of live nodes and the hash ring (DESIGN §3).
///
/// Every `interval` the node writes its heartbeat (a key with a TTL that Redis keeps) and
/// reads the live set; every node builds the same ring from the same names. A name belongs to
/// one live incarnation: `register` refuses to start a second process with a live node's
/// name. Changes (joins, leaves, restarts) go to the listener, in order.
public final class ClusterMembership: Service {
    public typealias Listener = @Sendable (_ changes: [MembershipChange], _ ring: HashRing) async -> Void

    public struct NameTaken: Error, CustomStringConvertible {
        public let name: String
        public let holder: String
        public var description: String {
            "the node name \(name) is in use by a live node (\(holder)); give this node another PARLEY_NODE_NAME, or wait until that one stops"
        }
    }

    /// This node's heartbeat record (marked `draining` once it drains).
    public var record: NodeRecord { state.withLock { $0.record } }
    public let identity: NodeIdentity
    private let store: any MembershipStore
    public let interval: Duration
    public let ttl: Duration
    private let logger: Logger
    private let state: Mutex<State>
    private let listener = Mutex<Listener?>(nil)

    private struct State {
        var record: NodeRecord
        var live: [String: NodeRecord] = [:]
        var ring: HashRing
        /// When a heartbeat was last confirmed (monotonic, this node's).
        var confirmedAt: ContinuousClock.Instant?
        var refreshedAt: ContinuousClock.Instant?
    }

    public init(record: NodeRecord, store: any MembershipStore, interval: Duration = .seconds(1), ttl: Duration = .seconds(3),
                logger: Logger = Logger(label: "parley.membership")) {
        identity = record.identity
        self.store = store
        self.interval = interval
        self.ttl = ttl
        self.logger = logger
        state = Mutex(State(record: record, live: [record.identity.name: record], ring: HashRing(members: [record.identity.name])))
    }

    private let lapseListener = Mutex<(@Sendable () async -> Void)?>(nil)

    public func onChange(_ listener: @escaping Listener) { self.listener.withLock { $0 = listener } }
    /// Called when this node finds its own heartbeat had expired and registers again.
    public func onLapse(_ listener: @escaping @Sendable () async -> Void) { lapseListener.withLock { $0 = listener } }

    /// The ring of the live nodes that are not draining (this node included while its
    /// heartbeat holds and it does not drain).
    public var ring: HashRing { state.withLock { $0.ring } }

    /// Whether `holder` (`name/incarnation`) is a live node incarnation (draining or not).
    public func isLive(_ holder: String) -> Bool {
        guard let identity = NodeIdentity(holder) else { return false }
        return state.withLock { $0.live[identity.name]?.identity == identity }
    }

    /// The ring's preferred owner of `key` among the live nodes.
    public func preferredOwner(of key: String) -> String? { ring.owner(of: key) }

    /// Whether the heartbeat was confirmed within the TTL (this node is a member now).
    public var isMember: Bool {
        state.withLock { $0.confirmedAt.map { ContinuousClock.now - $0 < ttl } ?? false }
    }

    /// The first heartbeat: throws `NameTaken` when a live node has this name. A name still
    /// held by a crashed predecessor (restarted at once, before its heartbeat expired) frees
    /// itself within the TTL, so the name is tried for one TTL and an interval before giving up;
    /// a live holder keeps renewing it and keeps it.
    public func register() async throws {
        let giveUpAt = ContinuousClock.now + ttl + interval
        while true {
            switch try await store.heartbeat(self.record, ttl: ttl) {
            case .registered, .renewed:
                state.withLock { $0.confirmedAt = .now }
                await refresh()
                return
            case .nameTaken(let holder):
                guard ContinuousClock.now < giveUpAt else { throw NameTaken(name: identity.name, holder: holder) }
                logger.notice("this node's name is held; waiting to see whether its holder is alive",
                              metadata: ["holder": "\(holder)"])
                try await Task.sleep(for: interval * 0.5)
            }
        }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { break }
            await beat()
            await refresh()
        }
        try? await store.leave(identity)
    }

    /// Whether this node drains.
    public var isDraining: Bool { state.withLock { $0.record.draining } }

    /// Marks this node draining: its heartbeat says so at once, every node's ring drops it
    /// (while it stays live, answering for the leases it still holds), and the listener hears
    /// of the new ring here too, so the owned channels move. The heartbeat goes on until the
    /// node stops.
    public func startDraining() async {
        let already = state.withLock { state -> Bool in
            defer { state.record.draining = true }
            return state.record.draining
        }
        guard !already else { return }
        logger.notice("draining: leaving the ring")
        await beat()
        await refresh()
    }

    private func beat() async {
        let sent = ContinuousClock.now
        do {
            let record = self.record
            switch try await withTimeout(interval, { try await self.store.heartbeat(record, ttl: self.ttl) }) {
            case .renewed:
                state.withLock { $0.confirmedAt = sent }
            case .registered:
                // Our heartbeat had expired (a pause, a partition, a Redis restart): the others
                // saw us leave and may have taken our leases; fencing refuses our stale writes.
                state.withLock { $0.confirmedAt = sent }
                logger.warning("this node's heartbeat had expired; registered again")
                await lapseListener.withLock { $0 }?()
            case .nameTaken(let holder):
                logger.critical("another live process took this node's name; stop one of them", metadata: ["holder": "\(holder)"])
            }
        } catch {
            logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
        }
    }

    /// Reads the live set again unless it was read within `interval` (a router that meets an
    /// unknown lease holder asks; a burst of such requests reads once).
    public func refresh(ifOlderThan interval: Duration) async {
        let due = state.withLock { state -> Bool in
            if let last = state.refreshedAt, ContinuousClock.now - last < interval { return false }
            state.refreshedAt = .now
            return true
        }
        if due { await refresh() }
    }

    /// Reads the live set and tells the listener what changed.
    public func refresh() async {
        state.withLock { $0.refreshedAt = .now }
        guard let records = try? await withTimeout(interval, { try await self.store.live() }) else { return }
        var fresh = Dictionary(records.map { ($0.identity.name, $0) }, uniquingKeysWith: { $1 })
        // While our own heartbeat holds we are live even if the read raced it.
        if isMember { fresh[identity.name] = record }
        let (changes, ring) = state.withLock { state -> ([MembershipChange], HashRing?) in
            var changes: [MembershipChange] = []
            for (name, node) in fresh {
                if let known = state.live[name] {
                    if known.identity != node.identity { changes.append(.restarted(old: known.identity, new: node.identity)) }
                } else {
                    changes.append(.joined(node.identity))
                }
            }
            for (name, node) in state.live where fresh[name] == nil { changes.append(.left(node.identity)) }
            let placed = fresh.values.filter { !$0.draining }.map(\.identity.name)
            guard !changes.isEmpty || Set(placed) != Set(state.ring.members) else { return ([], nil) }
            state.live = fresh
            state.ring = HashRing(members: placed)
            return (changes, state.ring)
        }
        guard let ring else { return }
        logger.info("cluster membership changed", metadata: ["changes": "\(changes)", "live": "\(ring.members)"])
        await listener.withLock { $0 }?(changes, ring)
    }
}
