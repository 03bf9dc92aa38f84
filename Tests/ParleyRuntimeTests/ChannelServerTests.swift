import Foundation
import ParleyCore
import ParleyRuntime
import Synchronization
import Testing

/// Records published events.
final class EventLog: EventPublisher {
    private let events = Mutex<[(topic: String, event: ServerEvent)]>([])
    func publish(_ event: ServerEvent, topic: String) { events.withLock { $0.append((topic, event)) } }
    var createdSeqs: [Int64] {
        events.withLock { $0.compactMap { if case .messageCreated(let message) = $0.event { message.seq } else { nil } } }
    }
}

/// A log whose answers the test can interfere with: an append that Redis writes but whose
/// answer is lost, a delay after each append, a hook run after the first read.
final class FaultyLog: MessageLog {
    let inner: MemoryMessageLog
    let failNextAppendAfterWriting = Mutex(false)
    let appendDelay: Duration
    let afterFirstRead = Mutex<(@Sendable () async throws -> Void)?>(nil)

    init(leases: any LeaseStore, appendDelay: Duration = .zero) {
        inner = MemoryMessageLog(leases: leases)
        self.appendDelay = appendDelay
    }

    var trimGrace: Duration { inner.trimGrace }

    func append(_ message: MessageView, holder: String) async throws -> LogAppendOutcome {
        let outcome = try await inner.append(message, holder: holder)
        if appendDelay > .zero { try await Task.sleep(for: appendDelay) }
        if failNextAppendAfterWriting.withLock({ let fail = $0; $0 = false; return fail }) {
            throw CancellationError()
        }
        return outcome
    }

    func entries(channel: String, after: Int64, through: Int64, limit: Int) async throws -> [MessageView] {
        let answer = try await inner.entries(channel: channel, after: after, through: through, limit: limit)
        if let hook = afterFirstRead.withLock({ let hook = $0; $0 = nil; return hook }) { try await hook() }
        return answer
    }

    func entries(channel: String, before: Int64, limit: Int) async throws -> [MessageView] {
        try await inner.entries(channel: channel, before: before, limit: limit)
    }

    func lastSeq(channel: String) async throws -> Int64? { try await inner.lastSeq(channel: channel) }
    func trim(through: [String: Int64]) async throws { try await inner.trim(through: through) }
    func channelsWithEntries() async throws -> [String] { try await inner.channelsWithEntries() }
}

/// Collects the `seq`s of the `message_created` frames a socket receives.
final class SeqSocket: FrameSubscriber {
    let codec = PhoenixCodec.v2
    private let seqs = Mutex<[Int64]>([])
    func deliver(_ message: WebSocketMessage) -> Bool {
        guard case .text(let text) = message, let frame = try? JSONParser.parse(text),
              frame.arrayValue?[3] == "message_created", let seq = frame.arrayValue?[4]["seq"]?.intValue else { return true }
        seqs.withLock { $0.append(seq) }
        return true
    }
    var received: [Int64] { seqs.withLock { $0 } }
}

/// A channel on memory adapters, as one node runs it.
struct Channel {
    let leases = MemoryLeaseStore()
    let log: FaultyLog
    let store = MemoryMessageStore()
    let buffer: MessageBuffer
    let events = EventLog()
    let id = UUID().uuidString.lowercased()

    init(appendDelay: Duration = .zero) {
        log = FaultyLog(leases: leases, appendDelay: appendDelay)
        buffer = MessageBuffer(store: store, log: log, batchSize: 1_000, batchDelay: .seconds(3600))
    }

    /// Takes the lease as `holder` and loads the channel's server.
    func load(_ holder: String = "n/1", members: Set<String> = ["ann", "bob"], recentLimit: Int = 100,
              publisher: (any EventPublisher)? = nil) async throws -> ChannelServer {
        let fence = try #require(try await leases.acquire(.channel(id), holder: holder, ttl: .seconds(60)))
        return try await ChannelServer.load(channelID: id, holder: holder, fence: fence, members: members, log: log, store: store,
                                            sink: buffer, publisher: publisher ?? events, recentLimit: recentLimit)
    }

    func post(_ server: ChannelServer, _ n: Int, by user: String = "ann", clientID: String? = nil) async throws -> MessageView {
        try await server.post(userID: user, body: "m\(n)", clientMessageID: clientID ?? "c\(n)")
    }

    /// The node's bus service (on a bus of its own): its feeds are where sockets attach.
    func edge() -> ClusterBusService {
        ClusterBusService(identity: NodeIdentity(name: "n", incarnation: "1"), bus: MemoryClusterBus(hub: MemoryBusHub()),
                          broadcaster: Broadcaster(), log: log, store: store)
    }

    func storedSeqs() async throws -> [Int64] { try await store.messages(channel: id, seqs: 1...Int64.max, limit: 10_000).map(\.seq) }
    func loggedSeqs() async throws -> [Int64] { try await log.entries(channel: id, after: 0, limit: 10_000).map(\.seq) }
}

@Suite("Channel server: durability, dedupe, reads")
struct ChannelServerTests {
    /// Issue 14.1: a node killed before its buffer wrote leaves its tail in the log; whoever
    /// takes the lease next stores it before serving, and the sequence continues.
    @Test func aDeadOwnersLogTailIsStoredBeforeTheNextOwnerServes() async throws {
        let channel = Channel()
        let first = try await channel.load("n/1")
        for n in 1...7 { _ = try await channel.post(first, n) }
        #expect(try await channel.storedSeqs() == [], "the dead node's buffer never wrote")
        try await channel.leases.release(.channel(channel.id), holder: "n/1")

        let next = try await channel.load("n/2")
        #expect(try await channel.storedSeqs() == Array(1...7), "recovered into the store")
        #expect(try await channel.loggedSeqs() == [], "then trimmed")
        #expect(try await channel.post(next, 8).seq == 8)
        let retry = try await channel.post(next, 3)
        #expect(retry.seq == 3, "a resend of a recovered message is answered with its seq, from the store")
        await #expect(throws: ChannelError.notOwner) { _ = try await channel.post(first, 9) }
    }

    /// Issue 14.1: the log is trimmed only through the contiguous persisted prefix; a message
    /// the store lacks keeps every later one in the log too.
    @Test func theBufferNeverTrimsPastAMessageTheStoreLacks() async throws {
        let channel = Channel()
        let server = try await channel.load()
        for n in 1...3 { _ = try await channel.post(server, n) }
        // A second buffer that saw only 2 and 3 (as after a restart that lost 1's enqueue).
        let partial = MessageBuffer(store: channel.store, log: channel.log, batchSize: 1_000, batchDelay: .seconds(3600))
        await partial.persisted(channel: channel.id, through: 0)
        let logged = try await channel.loggedSeqs()
        #expect(logged == [1, 2, 3])
        for message in try await channel.log.entries(channel: channel.id, after: 1, limit: 10) {
            await partial.enqueue(message, fence: server.fence)
        }
        await partial.drainAll()
        #expect(try await channel.storedSeqs() == [2, 3])
        #expect(try await channel.loggedSeqs() == [1, 2, 3], "nothing trimmed above the hole at 1")
        await channel.buffer.drainAll()
        #expect(try await channel.storedSeqs() == [1, 2, 3])
        #expect(try await channel.loggedSeqs() == [], "trimmed once contiguous")
    }

    /// Issue 14.2: an append Redis wrote but whose answer was lost is published and stored
    /// (on the next turn or the router's tick), and the client's retry gets its seq.
    @Test func anAppendThatFailedAfterBeingWrittenIsPublishedStoredAndAnsweredOnRetry() async throws {
        let channel = Channel()
        let server = try await channel.load()
        _ = try await channel.post(server, 1)
        channel.log.failNextAppendAfterWriting.withLock { $0 = true }
        await #expect(throws: ChannelError.self) { _ = try await channel.post(server, 2) }
        #expect(channel.events.createdSeqs == [1])
        await server.resyncIfNeeded()
        #expect(channel.events.createdSeqs == [1, 2], "the written message is published")
        let retry = try await channel.post(server, 2)
        #expect(retry.seq == 2, "the retry is the same message")
        await channel.buffer.drainAll()
        #expect(try await channel.storedSeqs() == [1, 2], "and stored")
    }

    /// Issue 14.3: a client_msg_id is its sender's: another sender reusing it posts a new
    /// message; a retry after the log forgot is answered from the store with the first seq.
    @Test func clientMessageIDsArePerSenderAndRememberedAsLongAsTheMessageExists() async throws {
        let channel = Channel()
        let server = try await channel.load()
        let ann = try await channel.post(server, 1, by: "ann", clientID: "same")
        let bob = try await channel.post(server, 2, by: "bob", clientID: "same")
        #expect(ann.seq == 1 && bob.seq == 2 && bob.userID == "bob")
        await channel.buffer.drainAll()
        #expect(try await channel.loggedSeqs() == [], "stored and trimmed: the log forgot both")
        let retry = try await channel.post(server, 99, by: "ann", clientID: "same")
        #expect(retry.seq == 1 && retry.id == ann.id && retry.body == "m1", "answered by the store")
        #expect(await server.currentSeq == 2, "no new seq")
    }

    /// Issue 14.4: reading the log before the store: a flush between the two reads skips
    /// nothing.
    @Test func aFlushBetweenTheTwoReadsSkipsNothing() async throws {
        let channel = Channel()
        let server = try await channel.load(recentLimit: 2)
        for n in 1...20 { _ = try await channel.post(server, n) }
        // 1…5 stored; then, right after the next log read, 6…10 are stored and trimmed.
        let store = channel.store, log = channel.log, id = channel.id
        let early = try await log.entries(channel: id, after: 0, limit: 5)
        _ = try await store.insert(early, fences: [id: server.fence])
        try await log.trim(through: [id: 5])
        channel.log.afterFirstRead.withLock {
            $0 = {
                _ = try await store.insert(try await log.entries(channel: id, after: 5, through: 10, limit: 5), fences: [id: server.fence])
                try await log.trim(through: [id: 10])
            }
        }
        #expect(try await server.messages(after: 0, limit: 100).map(\.seq) == Array(1...20))
    }

    /// Issue 14.4: a history page before `seq` is the newest page below it, wherever its
    /// messages are; edits and deletes show on every read path; no holes from early writes.
    @Test func historyPagesAreTheNewestBelowAndShowEditsAndDeletes() async throws {
        let channel = Channel()
        let server = try await channel.load(recentLimit: 2)
        var posted: [MessageView] = []
        for n in 1...30 { posted.append(try await channel.post(server, n)) }
        #expect(try await server.messages(before: 20, limit: 5).map(\.seq) == [15, 16, 17, 18, 19])
        _ = try await server.edit(messageID: posted[2].id, by: "ann", body: "edited three")
        _ = try await server.delete(messageID: posted[3].id, by: "ann")
        _ = try await server.react(messageID: posted[9].id, by: "bob", emoji: "👍", present: true)
        let all = try await server.messages(after: 0, limit: 100)
        #expect(all.map(\.seq) == Array(1...30), "no holes")
        #expect(all[2].body == "edited three" && all[2].editedAt != nil)
        #expect(all[3].body == "" && all[3].deletedAt != nil)
        let page = try await server.messages(before: 6, limit: 5)
        #expect(page.map(\.body) == ["m1", "m2", "edited three", "", "m5"])
        // Changing a message stores everything before it first (the reacted-to one was older
        // than the cache, so the whole log went in): the store has no hole.
        #expect(try await channel.storedSeqs() == Array(1...30))
        await #expect(throws: ChannelError.forbidden("only the author can change a message")) {
            _ = try await server.edit(messageID: posted[0].id, by: "bob", body: "not mine")
        }
    }

    /// Issue 14.4: a catch-up over messages that are in neither the log nor the store fails
    /// with `gap` instead of stopping silently.
    @Test func aCatchUpThatCannotCompleteSaysSo() async throws {
        let channel = Channel()
        let server = try await channel.load(recentLimit: 2)
        for n in 1...10 { _ = try await channel.post(server, n) }
        try await channel.log.trim(through: [channel.id: 4])  // lost: in neither place
        await #expect(throws: ChannelError.gap(1...4)) { _ = try await server.messages(after: 0, limit: 100) }
        let bus = channel.edge()
        await #expect(throws: ChannelError.gap(1...4)) {
            try await bus.feeds.open(channel.id).attach(SeqSocket(), after: 0)
        }
        #expect(try await server.messages(after: 4, limit: 100).map(\.seq) == Array(5...10))
    }

    /// Issue 14.5: a catch-up that runs while messages are being appended delivers each seq
    /// exactly once, in order (reads stop at the published seq) — through the node's channel
    /// feed, the one path sockets attach by.
    @Test func catchUpDuringAppendsDeliversEverySeqOnce() async throws {
        let channel = Channel(appendDelay: .milliseconds(1))
        let bus = channel.edge()
        let server = try await channel.load(recentLimit: 3, publisher: bus)
        for n in 1...20 { _ = try await channel.post(server, n) }
        let posting = Task {
            for n in 21...220 { _ = try await server.post(userID: "bob", body: "live \(n)", clientMessageID: nil) }
        }
        var sockets: [(SeqSocket, Int64)] = []
        for _ in 0..<60 {
            let socket = SeqSocket()
            let after = max(0, await server.currentSeq - 10)
            try await bus.feeds.open(channel.id).attach(socket, after: after)
            sockets.append((socket, after))
            try await Task.sleep(for: .milliseconds(2))
        }
        try await posting.value
        for (socket, after) in sockets {
            #expect(socket.received == Array((after + 1)...220), "attached after \(after): \(socket.received.prefix(30))")
        }
    }
}

@Suite("Message buffer bounds")
struct MessageBufferBoundTests {
    /// Issue 14.9: while PostgreSQL is away the backlog is bounded; past it a new message is
    /// refused (`unavailable`) before anything is written, never acknowledged and dropped.
    @Test func aFullBacklogRefusesNewMessagesBeforeAcknowledgingThem() async throws {
        let leases = MemoryLeaseStore()
        let log = MemoryMessageLog(leases: leases)
        let store = MemoryMessageStore()
        let buffer = MessageBuffer(store: store, log: log, batchSize: 1_000, batchDelay: .seconds(3600), maximumPending: 100)
        let fence = try #require(try await leases.acquire(.channel("c"), holder: "n/1", ttl: .seconds(60)))
        let server = try await ChannelServer.load(channelID: "c", holder: "n/1", fence: fence, members: ["ann"], log: log,
                                                  store: store, sink: buffer, publisher: EventLog())
        for n in 1...100 { _ = try await server.post(userID: "ann", body: "m\(n)", clientMessageID: String?.none) }
        await #expect(throws: ChannelError.self) { _ = try await server.post(userID: "ann", body: "one too many", clientMessageID: String?.none) }
        #expect(try await log.lastSeq(channel: "c") == 100, "the refused message was not written")
        #expect(await buffer.stats().refusedFull == 1)
        await buffer.drainAll()
        #expect(try await server.post(userID: "ann", body: "room again", clientMessageID: String?.none).seq == 101)
    }
}
