import Logging
import ParleyCore
import Synchronization

/// The shell of the ownership state machines (DESIGN §3, "registry by lease"): one
/// `OwnershipStateMachine` per entity this node owns, whose directives it carries out.
///
/// Acquisition is on demand (a request for the entity, a handoff notice, the recovery
/// sweep). Renewals of every owned entity go out together, one pipelined round trip per
/// tick; a failed renewal is retried inside the safety margin, and an entity whose lease can
/// no longer be proven stops before the lease could have run out. A planned handoff stops
/// accepting, lets the appends in flight finish, then releases.
public final class OwnershipManager: Sendable {
    /// What the shell does to an entity's actor.
    public struct Actors: Sendable {
        /// Stop the actor at once, without writing (the lease is lost).
        public var stop: @Sendable (EntityKey) async -> Void
        /// Stop accepting and finish what is in flight; false if that failed.
        public var quiesce: @Sendable (EntityKey) async -> Bool
        /// The entity was released after a handoff (tell the new owner; drop the actor).
        public var handedOff: @Sendable (EntityKey) async -> Void

        public init(stop: @escaping @Sendable (EntityKey) async -> Void, quiesce: @escaping @Sendable (EntityKey) async -> Bool,
                    handedOff: @escaping @Sendable (EntityKey) async -> Void) {
            self.stop = stop
            self.quiesce = quiesce
            self.handedOff = handedOff
        }
    }

    public struct Stats: Sendable, Hashable {
        public var acquired = 0
        public var refused = 0
        public var lost = 0
        public var handoffs = 0
        /// Total time handoffs kept their entity from accepting (stop accepting → released).
        public var handoffMilliseconds: Int64 = 0
        public var longestHandoffMilliseconds: Int64 = 0
        public var renewalRounds = 0
        public var renewalsFailed = 0
    }

    public let holder: String
    public let timing: OwnershipStateMachine.Timing
    private let leases: any LeaseStore
    private let clock: any ParleyClock
    private let logger: Logger
    private let machines = Mutex<[EntityKey: OwnershipStateMachine]>([:])
    private let counters = Mutex(Stats())
    private let actors = Mutex<Actors?>(nil)
    /// Handoffs under way, each a task of its own (see `ringChanged`).
    private let handoffs = Mutex(Handoffs())
    private struct Handoffs {
        var nextID = 0
        var running: [Int: Task<Void, Never>] = [:]
    }
    /// When a renewal round last failed as a whole (Redis did not answer), if the last one did.
    private let failingSince = Mutex<ContinuousClock.Instant?>(nil)

    /// False while renewals have been failing for longer than the safety margin: this node
    /// cannot prove its leases (the load balancer should stop sending it clients).
    public var renewalsHealthy: Bool {
        failingSince.withLock { $0.map { ContinuousClock.now - $0 < timing.safetyMargin } ?? true }
    }

    public init(holder: String, leases: any LeaseStore, timing: OwnershipStateMachine.Timing, clock: any ParleyClock = SystemClock(),
                logger: Logger = Logger(label: "parley.ownership")) {
        self.holder = holder
        self.leases = leases
        self.timing = timing
        self.clock = clock
        self.logger = logger
    }

    public func setActors(_ actors: Actors) { self.actors.withLock { $0 = actors } }
    public func stats() -> Stats { counters.withLock { $0 } }

    /// Entities owned now (leases held and provable).
    public var owned: [EntityKey] {
        let now = clock.now()
        return machines.withLock { $0.filter { $0.value.canWrite(at: now) }.map(\.key) }
    }

    public func canWrite(_ key: EntityKey) -> Bool {
        let now = clock.now()
        return machines.withLock { $0[key]?.canWrite(at: now) ?? false }
    }

    /// Takes `key`'s lease; returns its fence. Throws `ChannelError.notOwner` when another node
    /// holds it.
    public func acquire(_ key: EntityKey) async throws -> Int64 {
        let sentAt = clock.now()
        let (directives, held) = machines.withLock { machines -> ([OwnershipStateMachine.Directive], Int64?) in
            if let current = machines[key], current.canWrite(at: sentAt), let fence = current.fence {
                return ([], fence)
            }
            // No machine, one still acquiring, or one whose lease can no longer be proven (its
            // fence must not be handed out again): start afresh.
            var machine = OwnershipStateMachine(timing: timing)
            let directives = machine.want(at: sentAt)
            machines[key] = machine
            return (directives, nil)
        }
        if let held { return held }
        guard directives.contains(.acquire) else { throw ChannelError.notOwner }
        let fence: Int64?
        do {
            fence = try await leases.acquire(key, holder: holder, ttl: timing.leaseTTL)
        } catch {
            machines.withLock { _ = $0.removeValue(forKey: key) }
            throw error
        }
        guard let fence else {
            machines.withLock { _ = $0.removeValue(forKey: key) }
            counters.withLock { $0.refused += 1 }
            throw ChannelError.notOwner
        }
        let granted = machines.withLock { machines -> [OwnershipStateMachine.Directive] in
            guard var machine = machines[key] else { return [.release(fence: fence)] }
            let directives = machine.leaseGranted(fence: fence, sentAt: sentAt, at: clock.now())
            machines[key] = machine
            if !directives.contains(.startActor(fence: fence)) { machines[key] = nil }
            return directives
        }
        guard granted.contains(.startActor(fence: fence)) else {
            try? await leases.release(key, holder: holder)
            throw ChannelError.notOwner
        }
        counters.withLock { $0.acquired += 1 }
        return fence
    }

    /// The actor went idle or failed to start: release the lease.
    public func giveUp(_ key: EntityKey) async {
        let directives = machines.withLock { machines -> [OwnershipStateMachine.Directive] in
            guard var machine = machines.removeValue(forKey: key) else { return [] }
            return machine.giveUp(at: clock.now())
        }
        if directives.contains(where: { if case .release = $0 { true } else { false } }) {
            try? await leases.release(key, holder: holder)
        }
    }

    /// The ring moved: every owned entity `stillPreferred` rejects is handed off (stop
    /// accepting, finish in-flight appends, release, tell the new owner). Returns when no
    /// handoff is under way any more.
    public func ringChanged(stillPreferred: @Sendable (EntityKey) -> Bool) async {
        let now = clock.now()
        let (moving, lost) = machines.withLock { machines -> ([EntityKey], [EntityKey]) in
            var moving: [EntityKey] = [], lost: [EntityKey] = []
            for (key, machine) in machines where !stillPreferred(key) {
                var machine = machine
                let directives = machine.ringChanged(preferred: false, at: now)
                if directives.contains(.stopActor) {
                    // The lease could not be proven any more: stop without a handoff.
                    machines[key] = nil
                    lost.append(key)
                } else {
                    machines[key] = machine
                    if directives.contains(.stopAccepting) { moving.append(key) }
                }
            }
            return (moving, lost)
        }
        guard let actors = actors.withLock({ $0 }) else { return }
        counters.withLock { $0.lost += lost.count }
        for key in lost { await actors.stop(key) }
        // Each handoff runs as a task of its own, and every call waits for all of them — those
        // it started and those an earlier, concurrent call started (a membership refresh and a
        // drain can both see the ring move; the second finds the entities already handing off
        // and must not return before they are released and their new owners told).
        let inFlight = handoffs.withLock { handoffs -> [Task<Void, Never>] in
            for key in moving {
                let id = handoffs.nextID
                handoffs.nextID += 1
                handoffs.running[id] = Task {
                    await self.handOff(key, actors: actors)
                    self.handoffs.withLock { _ = $0.running.removeValue(forKey: id) }
                }
            }
            return Array(handoffs.running.values)
        }
        for task in inFlight { await task.value }
    }

    private func handOff(_ key: EntityKey, actors: Actors) async {
        let started = ContinuousClock.now
        let quiet = await actors.quiesce(key)
        let directives = machines.withLock { machines -> [OwnershipStateMachine.Directive] in
            guard var machine = machines[key] else { return [] }
            let directives = quiet ? machine.flushCompleted(at: clock.now()) : machine.flushFailed(at: clock.now())
            machines[key] = machine
            if directives.contains(.stopActor) { machines[key] = nil }
            return directives
        }
        if directives.contains(where: { if case .release = $0 { true } else { false } }) {
            try? await leases.release(key, holder: holder)
            let blocked = (ContinuousClock.now - started).milliseconds
            counters.withLock {
                $0.handoffs += 1
                $0.handoffMilliseconds += blocked
                $0.longestHandoffMilliseconds = max($0.longestHandoffMilliseconds, blocked)
            }
            await actors.handedOff(key)
        } else if directives.contains(.stopActor) {
            counters.withLock { $0.lost += 1 }
            await actors.stop(key)
        }
    }

    /// One round: due renewals go out in one pipeline; entities whose lease cannot be proven
    /// any more stop.
    public func tick() async {
        let now = clock.now()
        var stops: [EntityKey] = []
        var due: [EntityKey: Moment] = [:]
        machines.withLock { machines in
            for (key, machine) in machines {
                var machine = machine
                let directives = machine.tick(at: now)
                if directives.contains(where: { if case .renew = $0 { true } else { false } }) { due[key] = now }
                if directives.contains(.stopActor) {
                    stops.append(key)
                    machines[key] = nil
                } else {
                    machines[key] = machine
                }
            }
        }
        if !due.isEmpty {
            counters.withLock { $0.renewalRounds += 1 }
            let answers: [EntityKey: Bool]?
            do {
                answers = try await leases.renew(Array(due.keys), holder: holder, ttl: timing.leaseTTL)
                failingSince.withLock { $0 = nil }
            } catch {
                failingSince.withLock { $0 = $0 ?? .now }
                answers = nil
                counters.withLock { $0.renewalsFailed += due.count }
                logger.warning("renewing leases failed; retrying inside the safety margin", metadata: ["error": "\(error)"])
            }
            let answeredAt = clock.now()
            machines.withLock { machines in
                for (key, sentAt) in due {
                    guard var machine = machines[key] else { continue }
                    let directives: [OwnershipStateMachine.Directive]
                    switch answers?[key] {
                    case true?: directives = machine.renewSucceeded(sentAt: sentAt, at: answeredAt)
                    case false?: directives = machine.renewRefused(at: answeredAt)
                    case nil: directives = machine.renewFailed(sentAt: sentAt, at: answeredAt)
                    }
                    if directives.contains(.stopActor) {
                        stops.append(key)
                        machines[key] = nil
                    } else {
                        machines[key] = machine
                    }
                }
            }
        }
        guard !stops.isEmpty, let actors = actors.withLock({ $0 }) else { return }
        counters.withLock { $0.lost += stops.count }
        for key in stops {
            logger.warning("lost the lease of an entity; its actor stops", metadata: ["entity": "\(key)"])
            await actors.stop(key)
        }
    }

    /// Releases everything (graceful stop after the actors stopped).
    public func releaseAll() async {
        let keys = machines.withLock { machines in
            defer { machines.removeAll() }
            return Array(machines.keys)
        }
        for key in keys { try? await leases.release(key, holder: holder) }
    }
}
