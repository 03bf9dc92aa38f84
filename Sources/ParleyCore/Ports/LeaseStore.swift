/// The registry by lease (DESIGN §3): who may run an entity's actor.
///
/// A lease names its holder (a node incarnation) and expires unless renewed. Each
/// acquisition increments the entity's fencing counter; writes carry the fence, so a stale
/// holder's writes can be refused.
public protocol LeaseStore: Sendable {
    /// Takes the lease if free; returns the new fence, or nil when someone else holds it.
    func acquire(_ key: EntityKey, holder: String, ttl: Duration) async throws -> Int64?
    /// Extends the lease if `holder` still holds it; false when it does not.
    func renew(_ key: EntityKey, holder: String, ttl: Duration) async throws -> Bool
    /// Gives the lease up if `holder` holds it.
    func release(_ key: EntityKey, holder: String) async throws
    /// The current holder, if any.
    func holder(of key: EntityKey) async throws -> String?
    /// Extends every lease of `keys` that `holder` still holds, in one round trip; the answer
    /// says, per key, whether it was extended.
    func renew(_ keys: [EntityKey], holder: String, ttl: Duration) async throws -> [EntityKey: Bool]
}

extension LeaseStore {
    public func renew(_ keys: [EntityKey], holder: String, ttl: Duration) async throws -> [EntityKey: Bool] {
        var answers: [EntityKey: Bool] = [:]
        for key in keys { answers[key] = try await renew(key, holder: holder, ttl: ttl) }
        return answers
    }
}
