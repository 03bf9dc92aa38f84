import ParleyCore
import ParleyRuntime
import Synchronization
import Testing

@Suite("Ownership manager (the shell of the ownership machines)")
struct OwnershipManagerTests {
    let timing = OwnershipStateMachine.Timing(leaseTTL: .seconds(2))

    /// Renewals go out together; a node that could not renew in time (a stall) never hands the
    /// old fence out again: it must take the lease afresh, once it is free.
    @Test func renewsTogetherAndNeverReusesAnUnprovableFence() async throws {
        let clock = ManualClock(start: Moment(nanoseconds: 1_000_000_000))
        let leases = MemoryLeaseStore(clock: clock)
        let manager = OwnershipManager(holder: "n/1", leases: leases, timing: timing, clock: clock)
        let first = try await manager.acquire(.channel("a"))
        _ = try await manager.acquire(.channel("b"))
        #expect(try await manager.acquire(.channel("a")) == first, "a provable lease keeps its fence")
        clock.advance(by: .milliseconds(700))
        await manager.tick()
        #expect(manager.stats().renewalRounds == 1, "both due renewals in one round")
        #expect(manager.canWrite(.channel("a")) && manager.canWrite(.channel("b")))
        // A stall: no tick for longer than the lease can be proven.
        clock.advance(by: .milliseconds(1_700))
        #expect(!manager.canWrite(.channel("a")))
        await #expect(throws: ChannelError.notOwner, "still held in the store: wait for it") {
            _ = try await manager.acquire(.channel("a"))
        }
        clock.advance(by: .seconds(1))
        let again = try await manager.acquire(.channel("a"))
        #expect(again > first, "a fresh lease, a new fence")
    }

    /// Found by CI: a membership refresh and a drain both saw the ring move; the drain's call
    /// found the channels already handing off and returned at once, and the drain then stopped
    /// the actors and dropped the leases under the handoffs in flight (none finished, no new
    /// owner was told). A second ring change now waits for the handoffs the first one started.
    @Test func aSecondRingChangeWaitsForTheHandoffsTheFirstStarted() async throws {
        let leases = MemoryLeaseStore(clock: SystemClock())
        let manager = OwnershipManager(holder: "n/1", leases: leases, timing: OwnershipStateMachine.Timing(leaseTTL: .seconds(30)))
        let gate = Gate()
        let handedOff = Mutex<[EntityKey]>([])
        manager.setActors(.init(stop: { _ in }, quiesce: { _ in await gate.wait(); return true },
                                handedOff: { key in handedOff.withLock { $0.append(key) } }))
        let keys = (0..<5).map { EntityKey.channel("c\($0)") }
        for key in keys { _ = try await manager.acquire(key) }

        let first = Task { await manager.ringChanged { _ in false } }
        while await gate.waiting < keys.count { try await Task.sleep(for: .milliseconds(5)) }
        let returned = Mutex(false)
        let second = Task {
            await manager.ringChanged { _ in false }
            returned.withLock { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(handedOff.withLock { $0.isEmpty })
        #expect(!returned.withLock { $0 }, "the second call waits while the first one's handoffs are under way")
        await gate.open()
        await second.value
        #expect(Set(handedOff.withLock { $0 }) == Set(keys), "when it returns, every entity was handed off")
        #expect(manager.stats().handoffs == keys.count)
        await first.value
    }
}

/// Holds its waiters until opened.
private actor Gate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    var waiting: Int { waiters.count }

    func wait() async {
        guard !isOpen else { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
    }
}
