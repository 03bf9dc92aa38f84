/// The lease-backed ownership of one entity (a channel or a workspace) by this node.
///
/// States: `idle` → `acquiring` → `owned` → `handingOff` → `released`, and `lost` when the
/// lease cannot be proven any more. Events: `want`, lease granted/refused, renew
/// ok/failed/refused, ring changed, flush completed/failed, and `tick` as time passes. Each
/// event returns the directives the shell must carry out.
///
/// The lease is timed from when a request was *sent*: a grant or renewal answered at any
/// later moment still only proves the lease until `sentAt + leaseTTL`. Invariant (tested):
/// the machine allows writes (`canWrite`, `.flush`, `.startActor`) only before
/// `provenUntil - safetyMargin`, so it never directs a write after the point at which the lease
/// could have expired without a renewal — it stops the actor first.
public struct OwnershipStateMachine: Sendable {
    public struct Timing: Sendable, Hashable {
        public var leaseTTL: Duration
        /// How long after a successful (re)acquisition the next renewal is sent.
        public var renewAfter: Duration
        /// Writes stop this long before the proven end of the lease (clock drift, pauses).
        public var safetyMargin: Duration
        /// Delay before retrying a failed renewal or a refused acquisition.
        public var retryAfter: Duration

        public init(leaseTTL: Duration = .seconds(5), renewAfter: Duration? = nil, safetyMargin: Duration? = nil,
                    retryAfter: Duration? = nil) {
            self.leaseTTL = leaseTTL
            self.renewAfter = renewAfter ?? leaseTTL * (1.0 / 3.0)
            self.safetyMargin = safetyMargin ?? leaseTTL * 0.2
            self.retryAfter = retryAfter ?? leaseTTL * 0.1
        }
    }

    public struct Lease: Sendable, Hashable {
        public var fence: Int64
        /// The lease is proven until here (send time of the last successful request + TTL).
        public var provenUntil: Moment
        public var nextRenewal: Moment
        /// Send time of the renewal in flight, if any.
        public var renewalSentAt: Moment?
    }

    public enum State: Sendable, Hashable {
        case idle
        case acquiring(sentAt: Moment)
        case owned(Lease)
        /// Stopped accepting; flushing before release.
        case handingOff(Lease)
        case released
        case lost
    }

    public enum Directive: Sendable, Hashable {
        /// Try to take the lease (`SET … NX PX`, INCR of the fence).
        case acquire
        /// Compare-and-extend the lease.
        case renew(fence: Int64)
        /// Start the entity's actor; its writes carry `fence`.
        case startActor(fence: Int64)
        /// Refuse new requests (the router retries them elsewhere).
        case stopAccepting
        /// Write everything buffered to PostgreSQL.
        case flush
        /// Tell the cluster the entity moves (`handoff(C, seq)`).
        case publishHandoff
        /// Compare-and-delete the lease.
        case release(fence: Int64)
        case stopActor
        /// Call `tick` at this moment.
        case wakeUp(at: Moment)
    }

    public let timing: Timing
    public private(set) var state: State = .idle
    /// Whether this node should own the entity (the ring prefers it).
    public private(set) var wanted = false
    private var retryAt: Moment?

    public init(timing: Timing = Timing()) { self.timing = timing }

    /// True when the actor may write at `now`.
    public func canWrite(at now: Moment) -> Bool {
        switch state {
        case .owned(let lease), .handingOff(let lease): return now < lease.provenUntil - timing.safetyMargin
        default: return false
        }
    }

    /// The fence of the lease held, if any.
    public var fence: Int64? {
        switch state {
        case .owned(let lease), .handingOff(let lease): return lease.fence
        default: return nil
        }
    }

    // MARK: Events

    /// This node should own the entity.
    public mutating func want(at now: Moment) -> [Directive] {
        wanted = true
        switch state {
        case .idle, .released, .lost:
            state = .acquiring(sentAt: now)
            return [.acquire]
        default:
            return []
        }
    }

    public mutating func leaseGranted(fence: Int64, sentAt: Moment, at now: Moment) -> [Directive] {
        guard case .acquiring(let sent) = state, sent == sentAt else { return [] }
        guard wanted else {
            // Drained or no longer preferred while the request was out: not started, given back.
            state = .idle
            return [.release(fence: fence)]
        }
        let lease = Lease(fence: fence, provenUntil: sentAt + timing.leaseTTL, nextRenewal: sentAt + timing.renewAfter)
        guard now < lease.provenUntil - timing.safetyMargin else {
            // Granted too late to be of use: give it back and try again (still wanted).
            state = .idle
            retryAt = now + timing.retryAfter
            return [.release(fence: fence), .wakeUp(at: now + timing.retryAfter)]
        }
        state = .owned(lease)
        return [.startActor(fence: fence), .wakeUp(at: lease.nextRenewal)]
    }

    /// Another node holds the lease.
    public mutating func leaseRefused(at now: Moment) -> [Directive] {
        guard case .acquiring = state else { return [] }
        state = .idle
        guard wanted else { return [] }
        retryAt = now + timing.retryAfter
        return [.wakeUp(at: now + timing.retryAfter)]
    }

    public mutating func renewSucceeded(sentAt: Moment, at now: Moment) -> [Directive] {
        switch state {
        case .owned(var lease), .handingOff(var lease):
            guard lease.renewalSentAt == sentAt else { return [] }
            lease.renewalSentAt = nil
            lease.provenUntil = max(lease.provenUntil, sentAt + timing.leaseTTL)
            lease.nextRenewal = sentAt + timing.renewAfter
            replaceLease(lease)
            return [.wakeUp(at: lease.nextRenewal)] + tick(at: now)
        default:
            return []
        }
    }

    /// The renewal could not be made (Redis unreachable): retry soon; the lease may still be ours.
    public mutating func renewFailed(sentAt: Moment, at now: Moment) -> [Directive] {
        switch state {
        case .owned(var lease), .handingOff(var lease):
            guard lease.renewalSentAt == sentAt else { return [] }
            lease.renewalSentAt = nil
            lease.nextRenewal = now + timing.retryAfter
            replaceLease(lease)
            return [.wakeUp(at: lease.nextRenewal)] + tick(at: now)
        default:
            return []
        }
    }

    /// The lease no longer names this node: stop at once, without writing.
    public mutating func renewRefused(at now: Moment) -> [Directive] {
        switch state {
        case .owned, .handingOff:
            return loseLease(at: now)
        default:
            return []
        }
    }

    /// The ring changed: `preferred` says whether this node is now the preferred owner.
    /// Ownership is sticky, so an owner that is no longer preferred hands off (planned), and
    /// one that is preferred but idle starts acquiring.
    public mutating func ringChanged(preferred: Bool, at now: Moment) -> [Directive] {
        wanted = preferred
        switch state {
        case .owned(let lease) where !preferred:
            guard canWrite(at: now) else { return loseLease(at: now) }
            state = .handingOff(lease)
            return [.stopAccepting, .flush]
        case .idle, .released, .lost:
            return preferred ? want(at: now) : []
        default:
            return []
        }
    }

    /// The node is shutting down: hand off like a planned move.
    public mutating func drain(at now: Moment) -> [Directive] {
        wanted = false
        switch state {
        case .owned(let lease):
            guard canWrite(at: now) else { return loseLease(at: now) }
            state = .handingOff(lease)
            return [.stopAccepting, .flush]
        default:
            // Acquiring: the grant, if it comes, is released (`leaseGranted` checks `wanted`).
            return []
        }
    }

    /// This node no longer needs the entity (its actor went idle): release without a handoff
    /// notice; a grant still in flight is released when it arrives.
    public mutating func giveUp(at now: Moment) -> [Directive] {
        wanted = false
        retryAt = nil
        switch state {
        case .owned(let lease), .handingOff(let lease):
            state = .released
            return [.stopAccepting, .release(fence: lease.fence), .stopActor]
        case .lost:
            state = .released
            return []
        default:
            return []
        }
    }

    public mutating func flushCompleted(at now: Moment) -> [Directive] {
        guard case .handingOff(let lease) = state else { return [] }
        guard canWrite(at: now) else { return loseLease(at: now) }
        state = .released
        return [.publishHandoff, .release(fence: lease.fence), .stopActor]
    }

    public mutating func flushFailed(at now: Moment) -> [Directive] {
        guard case .handingOff = state else { return [] }
        guard canWrite(at: now) else { return loseLease(at: now) }
        return [.flush]
    }

    /// Time passed: renew when due, stop before the lease could lapse, retry acquiring.
    public mutating func tick(at now: Moment) -> [Directive] {
        switch state {
        case .owned(var lease), .handingOff(var lease):
            guard now < lease.provenUntil - timing.safetyMargin else { return loseLease(at: now) }
            if lease.renewalSentAt == nil && now >= lease.nextRenewal {
                lease.renewalSentAt = now
                replaceLease(lease)
                return [.renew(fence: lease.fence), .wakeUp(at: lease.provenUntil - timing.safetyMargin)]
            }
            return []
        case .idle, .lost:
            guard wanted, let retryAt, now >= retryAt else { return [] }
            self.retryAt = nil
            state = .acquiring(sentAt: now)
            return [.acquire]
        default:
            return []
        }
    }

    /// The send time of the renewal in flight, for matching its answer.
    public var renewalSentAt: Moment? {
        switch state {
        case .owned(let lease), .handingOff(let lease): return lease.renewalSentAt
        default: return nil
        }
    }

    private mutating func replaceLease(_ lease: Lease) {
        if case .handingOff = state { state = .handingOff(lease) } else { state = .owned(lease) }
    }

    /// Stops without writing; if the entity is still wanted, tries to acquire it again later
    /// (a fresh lease with a new fence).
    private mutating func loseLease(at now: Moment) -> [Directive] {
        state = .lost
        guard wanted else { return [.stopAccepting, .stopActor] }
        retryAt = now + timing.retryAfter
        return [.stopAccepting, .stopActor, .wakeUp(at: now + timing.retryAfter)]
    }
}
