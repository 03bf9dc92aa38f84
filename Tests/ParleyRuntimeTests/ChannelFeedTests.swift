import ParleyCore
import ParleyRuntime
import Synchronization
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

    /// Found by a chaos run (two sockets each got one seq twice): a feed closed (its last
    /// subscriber gone) while a repair of it was still reading; the socket came back at once
    /// and attached to the channel's new feed; the old feed's repair then finished and
    /// published what it read to the topic — a second copy of messages the new feed delivered.
    /// A closed feed delivers nothing.
    @Test func aClosedFeedsLateRepairDeliversNothing() async throws {
        let leases = MemoryLeaseStore()
        let log = GatedLog(MemoryMessageLog(leases: leases))
        let broadcaster = Broadcaster()
        let feeds = ChannelFeeds(log: log, store: MemoryMessageStore(), broadcaster: broadcaster, subscribe: { _ in })
        _ = try await leases.acquire(.channel("c1"), holder: "owner/1", ttl: .seconds(10))
        let old = try await feeds.open("c1")
        let first = RecordingSocket(codec: .v2, capacity: 100)
        try await old.attach(first, after: 0)
        for seq in Int64(1)...3 {
            _ = try await log.append(MessageView(id: "m\(seq)", channelID: "c1", seq: seq, userID: "alice", body: "b", createdAt: seq),
                                     holder: "owner/1")
        }
        // The bus came back: the old feed repairs through seq 3, its log read held at the gate.
        log.holdNext()
        await feeds.catchUpAll()
        #expect(await eventually { log.held == 1 })
        // Its socket leaves: the feed closes; the socket returns and attaches to a new feed.
        broadcaster.unsubscribe(first, from: "channel:c1")
        feeds.topicIdle("channel:c1")
        let new = try await feeds.open("c1")
        #expect(new !== old, "a new feed")
        let again = RecordingSocket(codec: .v2, capacity: 100)
        try await new.attach(again, after: 0)
        #expect(createdSeqs(again) == [1, 2, 3])
        // Now the old feed's repair reads on.
        log.release()
        #expect(await eventually { feeds.repairStats.repairs >= 1 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(createdSeqs(again) == [1, 2, 3], "the old feed's repair delivered nothing more")
    }
}

/// A message log whose next forward read, after `holdNext()`, waits until `release()` (the
/// rest goes straight through).
private final class GatedLog: MessageLog {
    private let inner: MemoryMessageLog
    private let gate = Mutex<(holding: Bool, held: Int, waiters: [CheckedContinuation<Void, Never>])>((false, 0, []))

    init(_ inner: MemoryMessageLog) { self.inner = inner }

    func holdNext() { gate.withLock { $0.holding = true } }
    var held: Int { gate.withLock { $0.held } }
    func release() {
        let waiters = gate.withLock { gate in
            defer { gate.waiters = [] }
            return gate.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var trimGrace: Duration { inner.trimGrace }
    func append(_ message: MessageView, holder: String) async throws -> LogAppendOutcome { try await inner.append(message, holder: holder) }
    func entries(channel: String, after: Int64, through: Int64, limit: Int) async throws -> [MessageView] {
        await withCheckedContinuation { continuation in
            let waiting = gate.withLock { gate -> Bool in
                guard gate.holding else { return false }
                gate.holding = false
                gate.held += 1
                gate.waiters.append(continuation)
                return true
            }
            if !waiting { continuation.resume() }
        }
        return try await inner.entries(channel: channel, after: after, through: through, limit: limit)
    }
    func entries(channel: String, before: Int64, limit: Int) async throws -> [MessageView] {
        try await inner.entries(channel: channel, before: before, limit: limit)
    }
    func lastSeq(channel: String) async throws -> Int64? { try await inner.lastSeq(channel: channel) }
    func trim(through: [String: Int64]) async throws { try await inner.trim(through: through) }
    func channelsWithEntries() async throws -> [String] { try await inner.channelsWithEntries() }
}
