/// Exponential backoff with jitter and a cap.
///
/// The delay for attempt `n` (0-based) is `min(maximum, initial * multiplier^n)`, scaled by a
/// random factor in `[1 - jitter, 1]`, so that many clients retrying at once spread out.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Fraction of the delay that is random, in `0...1` (0: no jitter, 1: "full jitter").
    public var jitter: Double

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5),
                multiplier: Double = 2, jitter: Double = 0.2) {
        precondition(initial > .zero && maximum >= initial && multiplier >= 1 && (0...1).contains(jitter))
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The capped delay before jitter for `attempt` (0-based).
    public func ceiling(attempt: Int) -> Duration {
        let exponent = Double(max(0, min(attempt, 64)))
        let raw = Double(initial.nanoseconds) * _pow(multiplier, exponent)
        return .nanoseconds(Int64(min(raw, Double(maximum.nanoseconds))))
    }

    /// The delay for `attempt`, with `unit` a random number in `0..<1` supplied by the caller.
    public func delay(attempt: Int, unit: Double) -> Duration {
        let ceiling = ceiling(attempt: attempt)
        let factor = 1 - jitter + jitter * min(max(unit, 0), 1)
        return ceiling * factor
    }

    /// The delay for `attempt` using the system random generator.
    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }

    public func delay<G: RandomNumberGenerator>(attempt: Int, using generator: inout G) -> Duration {
        delay(attempt: attempt, unit: Double.random(in: 0..<1, using: &generator))
    }

    private func _pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var remaining = Int(exponent)
        while remaining > 0 && result < 1e18 { result *= base; remaining -= 1 }
        return result
    }
}

/// The attempts made so far under a `Backoff`, and when the next may start.
public struct BackoffState: Sendable, Hashable {
    public let policy: Backoff
    public private(set) var attempts: Int = 0
    public private(set) var notBefore: Moment?

    public init(policy: Backoff) { self.policy = policy }

    /// True when a new attempt may be made at `now`.
    public func mayAttempt(at now: Moment) -> Bool {
        guard let notBefore else { return true }
        return now >= notBefore
    }

    /// Records a failure at `now`; returns the delay until the next attempt.
    @discardableResult
    public mutating func recordFailure(at now: Moment, unit: Double = Double.random(in: 0..<1)) -> Duration {
        let delay = policy.delay(attempt: attempts, unit: unit)
        attempts += 1
        notBefore = now + delay
        return delay
    }

    /// Records a success: the next failure starts from the initial delay again.
    public mutating func recordSuccess() {
        attempts = 0
        notBefore = nil
    }
}
