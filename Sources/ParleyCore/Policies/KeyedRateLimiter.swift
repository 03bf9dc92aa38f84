/// Token buckets by key (a user id, a client address): each key may burst `capacity`
/// requests, refilled at `refillPerSecond`. Memory is bounded: past `maximumKeys` buckets,
/// those full again (idle long enough to have refilled) are dropped first, then the oldest.
public struct KeyedRateLimiter: Sendable {
    public let capacity: Double
    public let refillPerSecond: Double
    public let maximumKeys: Int
    private var buckets: [String: (bucket: TokenBucket, lastUsed: Moment)] = [:]

    public init(capacity: Double, refillPerSecond: Double, maximumKeys: Int = 100_000) {
        self.capacity = capacity
        self.refillPerSecond = refillPerSecond
        self.maximumKeys = maximumKeys
    }

    public var keys: Int { buckets.count }

    /// Takes one token of `key`'s bucket.
    public mutating func take(_ key: String, at now: Moment) -> TokenBucket.Decision {
        var entry = buckets[key] ?? (TokenBucket(capacity: capacity, refillPerSecond: refillPerSecond, now: now), now)
        let decision = entry.bucket.take(at: now)
        entry.lastUsed = now
        buckets[key] = entry
        if buckets.count > maximumKeys { evict(at: now) }
        return decision
    }

    private mutating func evict(at now: Moment) {
        let refilled = Duration.seconds(capacity / refillPerSecond)
        buckets = buckets.filter { now - $0.value.lastUsed < refilled }
        if buckets.count > maximumKeys {
            let newest = buckets.sorted { $0.value.lastUsed > $1.value.lastUsed }.prefix(maximumKeys * 3 / 4)
            buckets = Dictionary(uniqueKeysWithValues: newest.map { ($0.key, $0.value) })
        }
    }
}
