import ParleyCore
import ParleyRuntime
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
}
