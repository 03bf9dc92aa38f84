import ParleyCore

/// `PresenceStore` in Redis: per workspace a hash `…:presence:workspace:{W}` of
/// `incarnation|socket` → `{"user": U, "meta": …}`; per node incarnation a set of the
/// workspaces it wrote to, so a dead node's metas can be found and reaped (one workspace's
/// keys per script).
public struct RedisPresenceStore: PresenceStore {
    public let client: RedisClient
    public let keys: RedisKeyspace

    public init(client: RedisClient, keys: RedisKeyspace) {
        self.client = client
        self.keys = keys
    }

    private func field(node: String, socket: String) -> String { "\(node)|\(socket)" }

    public func put(workspace: String, user: String, meta: PresenceMeta) async throws {
        let value: JSONValue = ["user": .string(user), "meta": meta.storedJSON]
        _ = try await client.pipeline([
            RedisCommand("SADD", keys.presenceNodeWorkspaces(node: meta.node), workspace),
            RedisCommand("HSET", keys.presence(workspace: workspace), field(node: meta.node, socket: meta.socket), value.jsonText),
        ])
    }

    public func remove(workspace: String, user: String, socket: String, node: String) async throws {
        try await client.execute("HDEL", keys.presence(workspace: workspace), field(node: node, socket: socket))
    }

    public func snapshot(workspace: String) async throws -> PresenceSnapshot {
        let all = try await client.execute("HVALS", keys.presence(workspace: workspace)).array ?? []
        return Self.snapshot(all.compactMap(\.bytes))
    }

    public func reap(node: String) async throws -> [String: PresenceSnapshot] {
        let setKey = keys.presenceNodeWorkspaces(node: node)
        let workspaces = try await client.execute("SMEMBERS", setKey).array?.compactMap(\.string) ?? []
        var removed: [String: PresenceSnapshot] = [:]
        for workspace in workspaces {
            let values = try await client.evaluate(.reapPresence, keys: [keys.presence(workspace: workspace)],
                                                   arguments: ["\(node)|"]).array ?? []
            let snapshot = Self.snapshot(values.compactMap(\.bytes))
            if !snapshot.users.isEmpty { removed[workspace] = snapshot }
        }
        try await client.execute("DEL", setKey)
        return removed
    }

    static func snapshot(_ values: [[UInt8]]) -> PresenceSnapshot {
        var snapshot = PresenceSnapshot()
        for bytes in values {
            guard let value = try? JSONParser.parse(bytes), let user = value["user"]?.stringValue,
                  let meta = value["meta"].flatMap(PresenceMeta.init(stored:)) else { continue }
            snapshot.add(user, meta)
        }
        return snapshot
    }
}
