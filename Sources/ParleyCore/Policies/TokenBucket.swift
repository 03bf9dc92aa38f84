/// A token-bucket rate limiter: holds up to `capacity` tokens, refilled at `refillPerSecond`.
/// Each request takes tokens; a request that finds too few is refused with the time to wait.
public struct TokenBucket: Sendable, Hashable {
    public let capacity: Double
    public let refillPerSecond: Double
    public private(set) var tokens: Double
    private var updatedAt: Moment

    public init(capacity: Double, refillPerSecond: Double, now: Moment) {
        precondition(capacity > 0 && refillPerSecond > 0)
        self.capacity = capacity
        self.refillPerSecond = refillPerSecond
        self.tokens = capacity
        self.updatedAt = now
    }

    public enum Decision: Sendable, Hashable {
        case allowed
        case limited(retryAfter: Duration)
    }

    public mutating func take(_ cost: Double = 1, at now: Moment) -> Decision {
        refill(at: now)
        if tokens >= cost {
            tokens -= cost
            return .allowed
        }
        let missing = min(cost, capacity) - tokens
        return .limited(retryAfter: .nanoseconds(Int64((missing / refillPerSecond * 1e9).rounded(.up))))
    }

    private mutating func refill(at now: Moment) {
        guard now > updatedAt else { return }
        tokens = min(capacity, tokens + (now - updatedAt).seconds * refillPerSecond)
        updatedAt = now
    }
}
