import ParleyCore
import Synchronization

/// The node's limits on expensive or abusable requests (per user and per client address):
/// sign-up and sign-in (each a bcrypt hash), and channel joins (each a membership read, and
/// possibly a channel server's start). Refusals answer `rate_limited`.
public final class RequestLimiter: Sendable {
    public enum Kind: String, Sendable { case auth, join }

    private let clock = SystemClock()
    private let auth: Mutex<KeyedRateLimiter>
    private let joins: Mutex<KeyedRateLimiter>
    /// A client address carries many users (a NAT, an office): it gets several users' worth.
    private let joinsByAddress: Mutex<KeyedRateLimiter>
    private let refused = Mutex<[Kind: Int]>([:])

    /// `authPerMinute` sign-ups and sign-ins per address and per email (burst a third of it);
    /// `joinsPerSecond` joins per user (burst five seconds' worth), ten times that per address.
    public init(authPerMinute: Int, joinsPerSecond: Int) {
        let perSecond = Double(authPerMinute) / 60
        auth = Mutex(KeyedRateLimiter(capacity: max(1, Double(authPerMinute) / 3), refillPerSecond: perSecond))
        joins = Mutex(KeyedRateLimiter(capacity: Double(joinsPerSecond * 5), refillPerSecond: Double(joinsPerSecond)))
        joinsByAddress = Mutex(KeyedRateLimiter(capacity: Double(joinsPerSecond * 50), refillPerSecond: Double(joinsPerSecond * 10)))
    }

    /// Whether every key may go ahead now (each takes a token); the wait when one may not.
    public func allow(_ kind: Kind, keys: [String?]) -> Duration? {
        let now = clock.now()
        var wait: Duration?
        for (index, key) in keys.enumerated() {
            guard let key else { continue }
            let decision: TokenBucket.Decision
            switch kind {
            case .auth: decision = auth.withLock { $0.take(key, at: now) }
            case .join where index == 0: decision = joins.withLock { $0.take(key, at: now) }
            case .join: decision = joinsByAddress.withLock { $0.take(key, at: now) }
            }
            if case .limited(let retryAfter) = decision { wait = max(wait ?? .zero, retryAfter) }
        }
        if wait != nil { refused.withLock { $0[kind, default: 0] += 1 } }
        return wait
    }

    /// Requests refused so far, by kind.
    public func refusals(_ kind: Kind) -> Int { refused.withLock { $0[kind] ?? 0 } }
}
