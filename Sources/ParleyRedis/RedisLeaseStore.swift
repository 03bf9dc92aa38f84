import ParleyCore

/// `LeaseStore` in Redis: `SET … NX PX` plus a fencing counter, renewed and released by
/// compare-and-set scripts.
public struct RedisLeaseStore: LeaseStore {
    public let client: RedisClient
    public let keys: RedisKeyspace

    public init(client: RedisClient, keys: RedisKeyspace) {
        self.client = client
        self.keys = keys
    }

    public func acquire(_ key: EntityKey, holder: String, ttl: Duration) async throws -> Int64? {
        let reply = try await client.evaluate(.acquireLease, keys: [keys.lease(key), keys.fence(key)],
                                              arguments: [holder, ttl.milliseconds])
        return reply.isNull ? nil : reply.int
    }

    public func renew(_ key: EntityKey, holder: String, ttl: Duration) async throws -> Bool {
        try await client.evaluate(.renewLease, keys: [keys.lease(key)], arguments: [holder, ttl.milliseconds]) == .integer(1)
    }

    /// One pipeline of compare-and-extend scripts: one round trip for every lease of the node.
    public func renew(_ keys: [EntityKey], holder: String, ttl: Duration) async throws -> [EntityKey: Bool] {
        let replies = try await client.pipeline(keys.map {
            .evalSHA(.renewLease, keys: [self.keys.lease($0)], arguments: [holder, ttl.milliseconds])
        })
        if let failure = replies.first(where: { $0.errorMessage != nil }) {
            throw RedisError.reply(failure.errorMessage ?? "")
        }
        return Dictionary(uniqueKeysWithValues: zip(keys, replies.map { $0 == .integer(1) }))
    }

    public func release(_ key: EntityKey, holder: String) async throws {
        try await client.evaluate(.releaseLease, keys: [keys.lease(key)], arguments: [holder])
    }

    public func holder(of key: EntityKey) async throws -> String? {
        try await client.execute("GET", keys.lease(key)).string
    }
}
