/// A point on a monotonic timeline, in nanoseconds from an arbitrary origin.
///
/// Pure state machines never read a clock: their callers pass the current `Moment`
/// in, so every timeout can be tested by moving a `ManualClock` instead of sleeping.
public struct Moment: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static let zero = Moment(nanoseconds: 0)

    public static func < (lhs: Moment, rhs: Moment) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public static func + (lhs: Moment, rhs: Duration) -> Moment {
        Moment(nanoseconds: lhs.nanoseconds &+ rhs.nanoseconds)
    }

    public static func - (lhs: Moment, rhs: Duration) -> Moment {
        Moment(nanoseconds: lhs.nanoseconds &- rhs.nanoseconds)
    }

    /// The time from `earlier` to `self` (negative when `earlier` is later).
    public static func - (lhs: Moment, rhs: Moment) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    public var description: String { "t+\(Double(nanoseconds) / 1e9)s" }
}

extension Duration {
    /// The whole number of nanoseconds in this duration (saturating at the bounds of Int64).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product &+ attoseconds / 1_000_000_000
    }

    /// The whole number of milliseconds in this duration.
    public var milliseconds: Int64 { nanoseconds / 1_000_000 }

    /// This duration in seconds, as a floating-point number.
    public var seconds: Double { Double(nanoseconds) / 1e9 }

    public static func * (lhs: Duration, rhs: Double) -> Duration {
        .nanoseconds(Int64((Double(lhs.nanoseconds) * rhs).rounded()))
    }
}
