import ParleyCore
import Testing

@Suite("Ownership state machine")
struct OwnershipStateMachineTests {
    typealias Machine = OwnershipStateMachine
    let timing = Machine.Timing(leaseTTL: .seconds(6), renewAfter: .seconds(2), safetyMargin: .seconds(1),
                                retryAfter: .milliseconds(500))
    let t0 = Moment(nanoseconds: 1_000_000_000_000)

    func owned(at now: Moment) -> Machine {
        var machine = Machine(timing: timing)
        _ = machine.want(at: now)
        _ = machine.leaseGranted(fence: 7, sentAt: now, at: now + .milliseconds(10))
        return machine
    }

    @Test func acquireStartsTheActorAndSchedulesRenewal() {
        var machine = Machine(timing: timing)
        #expect(machine.want(at: t0) == [.acquire])
        #expect(machine.state == .acquiring(sentAt: t0))
        #expect(machine.leaseGranted(fence: 7, sentAt: t0, at: t0 + .milliseconds(10))
                == [.startActor(fence: 7), .wakeUp(at: t0 + .seconds(2))])
        #expect(machine.canWrite(at: t0 + .seconds(1)))
        #expect(machine.fence == 7)
    }

    @Test func refusedLeaseRetriesWhileWanted() {
        var machine = Machine(timing: timing)
        _ = machine.want(at: t0)
        #expect(machine.leaseRefused(at: t0) == [.wakeUp(at: t0 + .milliseconds(500))])
        #expect(machine.state == .idle)
        #expect(machine.tick(at: t0 + .milliseconds(499)) == [])
        #expect(machine.tick(at: t0 + .milliseconds(500)) == [.acquire])
    }

    @Test func renewalExtendsTheLeaseFromItsSendTime() {
        var machine = owned(at: t0)
        #expect(machine.tick(at: t0 + .seconds(2)) == [.renew(fence: 7), .wakeUp(at: t0 + .seconds(5))])
        // The answer comes late; the lease is proven only from the send time.
        #expect(machine.renewSucceeded(sentAt: t0 + .seconds(2), at: t0 + .seconds(3)) == [.wakeUp(at: t0 + .seconds(4))])
        #expect(machine.canWrite(at: t0 + .milliseconds(6999)))
        #expect(!machine.canWrite(at: t0 + .seconds(7)))
    }

    @Test func failedRenewalsStopTheActorBeforeTheLeaseCouldExpire() {
        var machine = owned(at: t0)
        _ = machine.tick(at: t0 + .seconds(2))
        #expect(machine.renewFailed(sentAt: t0 + .seconds(2), at: t0 + .seconds(2)) == [.wakeUp(at: t0 + .milliseconds(2500))])
        _ = machine.tick(at: t0 + .milliseconds(2500))
        _ = machine.renewFailed(sentAt: t0 + .milliseconds(2500), at: t0 + .seconds(3))
        #expect(machine.canWrite(at: t0 + .milliseconds(4999)))
        #expect(machine.tick(at: t0 + .seconds(5)) == [.stopAccepting, .stopActor, .wakeUp(at: t0 + .milliseconds(5500))])
        #expect(machine.state == .lost)
        #expect(!machine.canWrite(at: t0 + .seconds(5)))
        // Still wanted: it tries for a fresh lease later.
        #expect(machine.tick(at: t0 + .milliseconds(5500)) == [.acquire])
    }

    @Test func refusedRenewalMeansLostAtOnce() {
        var machine = owned(at: t0)
        _ = machine.tick(at: t0 + .seconds(2))
        #expect(machine.renewRefused(at: t0 + .seconds(2)).prefix(2) == [.stopAccepting, .stopActor])
        #expect(machine.state == .lost)
        #expect(!machine.canWrite(at: t0 + .seconds(2)))
    }

    @Test func plannedHandoffFlushesPublishesAndReleases() {
        var machine = owned(at: t0)
        #expect(machine.ringChanged(preferred: false, at: t0 + .seconds(1)) == [.stopAccepting, .flush])
        #expect(machine.canWrite(at: t0 + .seconds(1)), "the flush itself still writes under the lease")
        #expect(machine.flushCompleted(at: t0 + .milliseconds(1500)) == [.publishHandoff, .release(fence: 7), .stopActor])
        #expect(machine.state == .released)
        #expect(!machine.canWrite(at: t0 + .seconds(2)))
    }

    @Test func leaseExpiringDuringHandoffStopsWithoutReleaseOrWrites() {
        var machine = owned(at: t0)
        _ = machine.ringChanged(preferred: false, at: t0 + .seconds(1))
        // The flush is slow and renewals fail: the lease must not be trusted past its proof.
        _ = machine.tick(at: t0 + .seconds(2))
        _ = machine.renewFailed(sentAt: t0 + .seconds(2), at: t0 + .seconds(3))
        #expect(machine.flushFailed(at: t0 + .seconds(4)) == [.flush])
        #expect(machine.flushCompleted(at: t0 + .seconds(5)).prefix(2) == [.stopAccepting, .stopActor])
        #expect(machine.state == .lost)
    }

    @Test func drainHandsOffAndAnIdleNodeThatBecomesPreferredAcquires() {
        var machine = owned(at: t0)
        #expect(machine.drain(at: t0 + .seconds(1)) == [.stopAccepting, .flush])
        var idle = Machine(timing: timing)
        #expect(idle.ringChanged(preferred: true, at: t0) == [.acquire])
        #expect(idle.ringChanged(preferred: true, at: t0) == [])
    }

    @Test func staleAnswersAreIgnored() {
        var machine = owned(at: t0)
        #expect(machine.leaseGranted(fence: 9, sentAt: t0, at: t0) == [])
        #expect(machine.renewSucceeded(sentAt: t0 + .seconds(9), at: t0 + .seconds(1)) == [])
        var late = Machine(timing: timing)
        _ = late.want(at: t0)
        // Granted after the lease could be useful: given back at once.
        #expect(late.leaseGranted(fence: 3, sentAt: t0, at: t0 + .seconds(5)) == [.release(fence: 3), .wakeUp(at: t0 + .milliseconds(5500))])
        // …and, still wanted, tried again when it wakes up (it used to stay idle for good).
        #expect(late.tick(at: t0 + .milliseconds(5500)) == [.acquire])
    }

    /// A grant that arrives after a drain or a ring change that made the node unwanted is
    /// given back, not leaked and not started.
    @Test func grantAfterDrainOrRingChangeIsReleasedNotStarted() {
        var drained = Machine(timing: timing)
        _ = drained.want(at: t0)
        #expect(drained.drain(at: t0 + .milliseconds(5)) == [])
        #expect(drained.leaseGranted(fence: 4, sentAt: t0, at: t0 + .milliseconds(10)) == [.release(fence: 4)])
        #expect(drained.state == .idle)
        #expect(drained.tick(at: t0 + .seconds(5)) == [])
        var moved = Machine(timing: timing)
        _ = moved.want(at: t0)
        #expect(moved.ringChanged(preferred: false, at: t0 + .milliseconds(5)) == [])
        #expect(moved.leaseGranted(fence: 5, sentAt: t0, at: t0 + .milliseconds(10)) == [.release(fence: 5)])
        #expect(!moved.canWrite(at: t0 + .milliseconds(20)))
    }

    @Test func givingUpReleasesAndStops() {
        var machine = owned(at: t0)
        #expect(machine.giveUp(at: t0 + .seconds(1)) == [.stopAccepting, .release(fence: 7), .stopActor])
        #expect(!machine.canWrite(at: t0 + .seconds(1)))
        #expect(machine.tick(at: t0 + .seconds(3)) == [])
    }

    /// The invariant: whatever happens, no write is allowed or directed at a moment when the
    /// lease could have expired, judged from the send times of the requests Redis confirmed.
    @Test func neverDirectsAWriteAfterTheLeaseCouldHaveExpired() {
        var generator = SplitMix64(seed: 42)
        for _ in 0..<2000 {
            var machine = Machine(timing: timing)
            var now = t0
            var provenUntil: Moment?
            var pendingAcquire: Moment?
            var fence: Int64 = 0
            for _ in 0..<60 {
                now = now + .milliseconds(Int64(generator.next() % 1500))
                var directives: [Machine.Directive]
                switch generator.next() % 9 {
                case 0: directives = machine.want(at: now)
                case 1:
                    if let sent = pendingAcquire {
                        fence += 1
                        directives = machine.leaseGranted(fence: fence, sentAt: sent, at: now)
                        if directives.contains(.startActor(fence: fence)) { provenUntil = sent + timing.leaseTTL }
                    } else { directives = [] }
                case 2: directives = machine.leaseRefused(at: now)
                case 3:
                    if let sent = machine.renewalSentAt {
                        directives = machine.renewSucceeded(sentAt: sent, at: now)
                        provenUntil = max(provenUntil ?? sent, sent + timing.leaseTTL)
                    } else { directives = [] }
                case 4: directives = machine.renewalSentAt.map { machine.renewFailed(sentAt: $0, at: now) } ?? []
                case 5: directives = machine.ringChanged(preferred: generator.next() % 2 == 0, at: now)
                case 6: directives = machine.flushCompleted(at: now)
                case 7: directives = machine.flushFailed(at: now)
                default: directives = machine.tick(at: now)
                }
                if directives.contains(.acquire) { pendingAcquire = now }
                if directives.contains(.stopActor) || directives.contains(where: { if case .release = $0 { true } else { false } }) {
                    if machine.fence == nil { provenUntil = nil }
                }
                let writes = machine.canWrite(at: now) || directives.contains(.flush)
                    || directives.contains(where: { if case .startActor = $0 { true } else { false } })
                if writes {
                    #expect(provenUntil.map { now < $0 } == true, "write allowed at \(now) with lease proven until \(String(describing: provenUntil))")
                }
            }
        }
    }
}

/// A small seeded generator, so property tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
