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

    /// A sign-up or sign-in from `address` for `email`: nil when it may go ahead (both take a
    /// token), else how long to wait.
    public func allowAuth(address: String?, email: String) -> Duration? {
        let now = clock.now()
        return refusal(.auth, [address.map { key in auth.withLock { $0.take(key, at: now) } },
                               auth.withLock { $0.take("email:" + email.lowercased(), at: now) }])
    }

    /// A channel join by `user` from `address`: nil when it may go ahead, else how long to wait.
    public func allowJoin(user: String, address: String?) -> Duration? {
        let now = clock.now()
        return refusal(.join, [joins.withLock { $0.take(user, at: now) },
                               address.map { key in joinsByAddress.withLock { $0.take(key, at: now) } }])
    }

    /// The longest wait among the limited decisions, counted as a refusal of `kind`.
    private func refusal(_ kind: Kind, _ decisions: [TokenBucket.Decision?]) -> Duration? {
        let wait = decisions.compactMap { decision -> Duration? in
            if case .limited(let retryAfter)? = decision { return retryAfter }
            return nil
        }.max()
        if wait != nil { refused.withLock { $0[kind, default: 0] += 1 } }
        return wait
    }

    /// Requests refused so far, by kind.
    public func refusals(_ kind: Kind) -> Int { refused.withLock { $0[kind] ?? 0 } }
}
