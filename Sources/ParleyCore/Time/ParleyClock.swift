import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where shells read the time. Pure types take `Moment`s; shells ask a clock.
public protocol ParleyClock: Sendable {
    /// The current monotonic moment.
    func now() -> Moment
    /// Milliseconds since the Unix epoch (for timestamps shared with other nodes and clients).
    func wallMilliseconds() -> Int64
}

/// The real clock: monotonic time from the OS, wall time from the realtime clock.
public struct SystemClock: ParleyClock {
    public init() {}

    public func now() -> Moment {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Moment(nanoseconds: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }

    public func wallMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}

/// A clock that moves only when told to: the clock of every timeout test.
public final class ManualClock: ParleyClock {
    private let state: Mutex<(moment: Moment, wallOffset: Int64)>

    public init(start: Moment = .zero, wallMilliseconds: Int64 = 1_700_000_000_000) {
        state = Mutex((start, wallMilliseconds))
    }

    public func now() -> Moment { state.withLock { $0.moment } }

    public func wallMilliseconds() -> Int64 {
        state.withLock { $0.wallOffset + $0.moment.nanoseconds / 1_000_000 }
    }

    /// Moves the clock forward by `duration`.
    public func advance(by duration: Duration) {
        state.withLock { $0.moment = $0.moment + duration }
    }
}
