import ParleyCore
import Synchronization

/// `MembershipStore` in memory (one process, tests); time comes from `clock`.
public final class MemoryMembershipStore: MembershipStore {
    private let clock: any ParleyClock
    private let nodes = Mutex<[String: (record: NodeRecord, expiresAt: Moment)]>([:])

    public init(clock: any ParleyClock = SystemClock()) { self.clock = clock }

    public func heartbeat(_ node: NodeRecord, ttl: Duration) async throws -> HeartbeatOutcome {
        let now = clock.now()
        return nodes.withLock { nodes in
            let name = node.identity.name
            if let current = nodes[name], current.expiresAt > now {
                guard current.record.identity == node.identity else { return .nameTaken(by: "\(current.record.identity)") }
                nodes[name] = (node, now + ttl)
                return .renewed
            }
            nodes[name] = (node, now + ttl)
            return .registered
        }
    }

    public func live() async throws -> [NodeRecord] {
        let now = clock.now()
        return nodes.withLock { $0.values.filter { $0.expiresAt > now }.map(\.record) }.sorted { $0.identity < $1.identity }
    }

    public func leave(_ node: NodeIdentity) async throws {
        nodes.withLock { nodes in
            if nodes[node.name]?.record.identity == node { nodes[node.name] = nil }
        }
    }
}
