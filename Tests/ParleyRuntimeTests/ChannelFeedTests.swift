import ParleyCore
import ParleyRuntime
import Testing

@Suite("Channel feeds (the edge)")
struct ChannelFeedTests {
    /// Issue 15.4: pub/sub is at most once. A message that arrives after a hole (its
    /// predecessors' publishes lost) is held while the hole is read from the log; the socket
    /// gets every seq once, in order, and late or repeated publishes change nothing.
    @Test func aHoleIsRepairedFromTheLogAndDeliveryStaysInOrder() async throws {
        let leases = MemoryLeaseStore()
        let log = MemoryMessageLog(leases: leases)
        let broadcaster = Broadcaster()
        let feeds = ChannelFeeds(log: log, store: MemoryMessageStore(), broadcaster: broadcaster, subscribe: { _ in })
        let socket = RecordingSocket(codec: .v2, capacity: 100)
        try await feeds.open("c1").attach(socket, after: 0)
        _ = try await leases.acquire(.channel("c1"), holder: "owner/1", ttl: .seconds(10))
        var messages: [MessageView] = []
        for seq in Int64(1)...6 {
            let message = MessageView(id: "m\(seq)", channelID: "c1", seq: seq, userID: "alice", body: "b\(seq)", createdAt: seq)
            #expect(try await log.append(message, holder: "owner/1") == .appended)
            messages.append(message)
        }
        feeds.receive(messages[4])              // seq 5: 1...4 were never published here
        #expect(await eventually { createdSeqs(socket) == [1, 2, 3, 4, 5] })
        feeds.receive(messages[2])              // a late publish of 3
        feeds.receive(messages[4])              // a repeated one of 5
        feeds.receive(messages[5])
        #expect(await eventually { createdSeqs(socket) == [1, 2, 3, 4, 5, 6] })
        try await Task.sleep(for: .milliseconds(50))
        #expect(createdSeqs(socket) == [1, 2, 3, 4, 5, 6], "nothing twice")
        #expect(feeds.repairStats.repaired == 4)
    }

    /// A subscriber attaching to a feed that moved on gets the backlog from the log, then the
    /// feed's cache, then live messages: every seq once.
    @Test func aLateSubscriberCatchesUpThenFollows() async throws {
        let leases = MemoryLeaseStore()
        let log = MemoryMessageLog(leases: leases)
        let feeds = ChannelFeeds(log: log, store: MemoryMessageStore(), broadcaster: Broadcaster(), subscribe: { _ in })
        _ = try await leases.acquire(.channel("c1"), holder: "owner/1", ttl: .seconds(10))
        let feed = try await feeds.open("c1")
        for seq in Int64(1)...300 {
            let message = MessageView(id: "m\(seq)", channelID: "c1", seq: seq, userID: "alice", body: "b", createdAt: seq)
            _ = try await log.append(message, holder: "owner/1")
            feeds.receive(message)
        }
        #expect(feed.lastSeq == 300)
        let late = RecordingSocket(codec: .v2, capacity: 1000)
        try await feed.attach(late, after: 10)
        let next = MessageView(id: "m301", channelID: "c1", seq: 301, userID: "alice", body: "b", createdAt: 301)
        _ = try await log.append(next, holder: "owner/1")
        feeds.receive(next)
        #expect(createdSeqs(late) == Array(11...301))
    }
}
