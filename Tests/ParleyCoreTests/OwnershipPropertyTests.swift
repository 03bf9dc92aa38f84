import ParleyCore
import Testing

/// The Swift state machine driven by random event sequences from the alphabet of the SPIN
/// model (Tests/Model/ownership.pml: want/acquire, grant, refusal, renew sent / granted /
/// lost / refused, ring moved or drain, give up, flush done / failed, time passing — with
/// answers arriving late, out of order, or never), checked against the model's invariants
/// as they apply to one node: it never directs or allows a write after the lease it holds
/// could have expired (every grant and renewal proves the lease only from its send time);
/// every write, renewal and release carries the fence of the grant it holds, fences never go
/// back; nothing is written after the actor stopped until a new grant starts it.
@Suite("Ownership state machine: properties over random event sequences")
struct OwnershipPropertyTests {
    typealias Machine = OwnershipStateMachine

    /// A small deterministic generator (xorshift64*), so a failure names its seed.
    struct Random {
        var state: UInt64
        init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
        mutating func next(_ bound: Int) -> Int {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return Int((state &* 0x2545_F491_4F6C_DD1D) % UInt64(bound))
        }
    }

    enum Event: CaseIterable {
        case want, grant, grantLate, refuse, renewOK, renewLost, renewRefused, ringMoved, drain, giveUp,
             flushDone, flushFailed, tick, timePasses
    }

    @Test(arguments: 0..<8)
    func invariantsHoldOverRandomSequences(batch: Int) {
        let timing = Machine.Timing(leaseTTL: .seconds(3), renewAfter: .seconds(1), safetyMargin: .milliseconds(600),
                                    retryAfter: .milliseconds(300))
        for run in 0..<250 {
            let seed = UInt64(batch * 1000 + run)
            var random = Random(seed: seed)
            var machine = Machine(timing: timing)
            var now = Moment(nanoseconds: 1_000_000_000_000)
            var nextFence: Int64 = 1
            var held: Int64?              // the fence of the grant the machine was given and keeps
            var provenUntil: Moment?      // what the grants and renewals it received prove, from their send times
            var acquireSentAt: Moment?
            var renewalSentAt: Moment?
            var actorRunning = false
            var trace: [String] = []

            func apply(_ directives: [Machine.Directive], _ event: Event) {
                trace.append("\(event) @\(now.nanoseconds / 1_000_000) ms → \(directives)")
                for directive in directives {
                    switch directive {
                    case .acquire:
                        acquireSentAt = now
                    case .renew(let fence):
                        #expect(fence == held, "seed \(seed): renews fence \(fence) holding \(String(describing: held))\n\(trace.joined(separator: "\n"))")
                        renewalSentAt = machine.renewalSentAt
                    case .startActor(let fence):
                        #expect(fence == held, "seed \(seed): starts with fence \(fence)")
                        actorRunning = true
                    case .flush:
                        #expect(actorRunning, "seed \(seed): flush with no actor\n\(trace.joined(separator: "\n"))")
                        #expect(provenUntil.map { now < $0 - timing.safetyMargin } ?? false,
                                "seed \(seed): flush after the lease could have lapsed\n\(trace.joined(separator: "\n"))")
                    case .release(let fence):
                        #expect(fence >= (held ?? 0), "seed \(seed): releases an older fence")
                    case .stopActor:
                        actorRunning = false
                    case .stopAccepting, .publishHandoff, .wakeUp:
                        break
                    }
                }
                if machine.fence == nil { held = nil; provenUntil = nil }
                // The model's invariant (1) for one node: writes only inside the proven lease.
                if machine.canWrite(at: now) {
                    #expect(provenUntil.map { now < $0 - timing.safetyMargin } ?? false,
                            "seed \(seed): may write at \(now.nanoseconds) past \(String(describing: provenUntil))\n\(trace.joined(separator: "\n"))")
                    #expect(machine.fence == held, "seed \(seed): writes under a fence it was not granted")
                }
            }

            for _ in 0..<80 {
                let event = Event.allCases[random.next(Event.allCases.count)]
                switch event {
                case .want:
                    apply(machine.want(at: now), event)
                case .grant, .grantLate:
                    guard let sent = acquireSentAt else { continue }
                    if event == .grantLate { now = now + .milliseconds(random.next(4000)) }
                    let fence = nextFence
                    nextFence += 1
                    let before = machine.fence
                    let directives = machine.leaseGranted(fence: fence, sentAt: sent, at: now)
                    if machine.fence == fence, before != fence {
                        held = fence
                        provenUntil = sent + timing.leaseTTL
                    }
                    acquireSentAt = nil
                    apply(directives, event)
                case .refuse:
                    apply(machine.leaseRefused(at: now), event)
                case .renewOK:
                    guard let sent = renewalSentAt else { continue }
                    // Half the answers come late (a slow Redis, a paused node).
                    if random.next(2) == 0 { now = now + .milliseconds(random.next(1500)) }
                    let directives = machine.renewSucceeded(sentAt: sent, at: now)
                    if held != nil, machine.fence == held { provenUntil = max(provenUntil ?? sent, sent + timing.leaseTTL) }
                    renewalSentAt = nil
                    apply(directives, event)
                case .renewLost:
                    guard let sent = renewalSentAt else { continue }
                    renewalSentAt = nil
                    apply(machine.renewFailed(sentAt: sent, at: now), event)
                case .renewRefused:
                    guard renewalSentAt != nil else { continue }
                    renewalSentAt = nil
                    apply(machine.renewRefused(at: now), event)
                case .ringMoved:
                    apply(machine.ringChanged(preferred: random.next(2) == 0, at: now), event)
                case .drain:
                    apply(machine.drain(at: now), event)
                case .giveUp:
                    apply(machine.giveUp(at: now), event)
                case .flushDone:
                    apply(machine.flushCompleted(at: now), event)
                case .flushFailed:
                    apply(machine.flushFailed(at: now), event)
                case .tick:
                    apply(machine.tick(at: now), event)
                case .timePasses:
                    // A pause: the clock jumps, possibly past the lease's end, before any
                    // wake-up runs (a frozen process, a late timer).
                    now = now + .milliseconds(random.next(2500))
                    apply([], event)
                }
            }
        }
    }
}
