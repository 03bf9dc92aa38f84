import ParleyCore

/// `MembershipStore` in Redis: `…:node:{name}` holds `incarnation|address|started` with a TTL
/// Redis keeps (so liveness is judged by Redis's clock alone), and `…:nodes` lists the names
/// for a cheap scan.
public struct RedisMembershipStore: MembershipStore {
    public let client: RedisClient
    public let keys: RedisKeyspace

    public init(client: RedisClient, keys: RedisKeyspace) {
        self.client = client
        self.keys = keys
    }

    public func heartbeat(_ node: NodeRecord, ttl: Duration) async throws -> HeartbeatOutcome {
        let name = node.identity.name
        let reply = try await client.evaluate(.heartbeat, keys: [keys.node(name)],
                                              arguments: [node.identity.incarnation, node.storedValue, ttl.milliseconds])
        switch reply.string {
        case "renewed": return .renewed
        case "registered":
            try await client.execute("SADD", keys.nodes, name)
            return .registered
        case let other?: return .nameTaken(by: NodeRecord(name: name, storedValue: other).map { "\($0.identity)" } ?? other)
        case nil: throw RedisError.unexpectedReply("heartbeat answered \(reply)")
        }
    }

    public func live() async throws -> [NodeRecord] {
        let names = try await client.execute("SMEMBERS", keys.nodes).array?.compactMap(\.string) ?? []
        guard !names.isEmpty else { return [] }
        let values = try await client.execute(RedisCommand("MGET", names.map(keys.node))).array ?? []
        var live: [NodeRecord] = []
        var gone: [String] = []
        for (name, value) in zip(names, values) {
            if let stored = value.string, let record = NodeRecord(name: name, storedValue: stored) {
                live.append(record)
            } else {
                gone.append(name)
            }
        }
        // Names whose heartbeat expired leave the listing; a node that comes back adds itself again.
        if !gone.isEmpty { _ = try? await client.execute(RedisCommand("SREM", [keys.nodes] + gone)) }
        return live.sorted { $0.identity < $1.identity }
    }

    public func leave(_ node: NodeIdentity) async throws {
        try await client.evaluate(.leaveCluster, keys: [keys.node(node.name)], arguments: [node.incarnation])
    }
}
