import ParleyCore
import ParleyRuntime
import Testing

@Suite("Presence tracker")
struct PresenceTrackerTests {
    @Test func idleSocketsGoAwayActivityBringsThemBackLastSocketGoesOffline() async {
        let clock = ManualClock()
        let broadcaster = Broadcaster()
        let watcher = RecordingSocket(codec: .v2)
        broadcaster.subscribe(watcher, to: "workspace:w")
        let tracker = PresenceTracker(publisher: broadcaster, node: "n/1", awayAfter: .seconds(300), clock: clock)
        await tracker.track(workspace: "w", user: "u", ref: "laptop")
        clock.advance(by: .seconds(200))
        await tracker.track(workspace: "w", user: "u", ref: "phone")
        clock.advance(by: .seconds(100))
        await tracker.markIdle()
        #expect(await tracker.status(of: "u", in: "w") == .online, "the phone is still active")
        clock.advance(by: .seconds(200))
        await tracker.markIdle()
        #expect(await tracker.status(of: "u", in: "w") == .away)
        await tracker.touch(ref: "phone")
        #expect(await tracker.status(of: "u", in: "w") == .online)
        await tracker.untrack(ref: "phone")
        #expect(await tracker.status(of: "u", in: "w") == .away, "the laptop is still there, idle")
        await tracker.untrack(ref: "laptop")
        #expect(await tracker.status(of: "u", in: "w") == .offline)
        #expect(await tracker.state(of: "w") == [:])
        // joins ×2, away ×2 (leave+join each), back online, phone leaves, laptop leaves.
        #expect(watcher.messages.count == 7)
    }
}
