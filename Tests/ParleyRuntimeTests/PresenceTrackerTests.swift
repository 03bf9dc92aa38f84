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
        await tracker.expireIdle()
        #expect(await tracker.status(of: "u", in: "w") == .online, "the phone is still active")
        clock.advance(by: .seconds(200))
        await tracker.expireIdle()
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

    @Test func oneServerPerWorkspaceStoppedOnlyAfterItsLastSocketHasBeenGoneAWhile() async {
        let clock = ManualClock()
        let broadcaster = Broadcaster()
        let watcher = RecordingSocket(codec: .v2)
        broadcaster.subscribe(watcher, to: "workspace:a")
        let tracker = PresenceTracker(publisher: broadcaster, node: "n/1", stopAfterEmpty: .seconds(60), clock: clock)
        await tracker.track(workspace: "a", user: "u", ref: "s1")
        await tracker.track(workspace: "b", user: "u", ref: "s2")
        let a = await tracker.server(for: "a")
        #expect(await tracker.server(for: "a") === a, "at most one server per workspace")
        #expect(await a.connectionCount == 1)
        #expect(await a.memberCount == 1)
        await tracker.announce(.channelCreated(["channel": ["name": "random"]]), in: "a")
        #expect(watcher.messages.count == 2, "u's join, then the announcement")

        await tracker.untrack(ref: "s1")
        clock.advance(by: .seconds(59))
        await tracker.expireIdle()
        #expect(Set(await tracker.runningWorkspaces) == ["a", "b"], "not empty for long enough yet")
        clock.advance(by: .seconds(1))
        await tracker.expireIdle()
        #expect(await tracker.runningWorkspaces == ["b"], "b still has a socket")
        // A new socket starts a fresh server with an empty presence.
        await tracker.track(workspace: "a", user: "v", ref: "s3")
        #expect(await tracker.server(for: "a") !== a)
        let state = await tracker.state(of: "a")
        #expect(state["u"] == nil && state["v"] != nil)
    }
}
