import DequeModule
import Foundation
import ParleyCore

/// The actor of one channel on its owner node (DESIGN §2): it assigns the per-channel `seq`,
/// writes each message to the durable log before acknowledging it, publishes it once, and
/// hands it to the buffer for PostgreSQL.
///
/// It runs only under the channel's lease, and everything it writes to the store carries the
/// lease's fence. Loading it first recovers the log: every entry above the store's last `seq`
/// is written to the store (a dead or stopped owner's tail), then the log is trimmed.
///
/// Appends are strictly one at a time (a FIFO turn inside the actor), so `seq`s reach the log
/// in order and leave no holes. After a failed append the next turn first adopts whatever
/// the log holds above the last known `seq` (the failure may have been written): those
/// messages are published and queued for the store like any other.
public actor ChannelServer {
    public nonisolated let channelID: String
    /// This node's incarnation: the lease holder the log checks.
    public nonisolated let holder: String
    /// The fence of the lease this server runs under; the store refuses older ones.
    public nonisolated let fence: Int64
    let log: any MessageLog
    let store: any MessageStore
    private let lookup: ClientMessageLookup
    private let sink: any MessageSink
    private let publisher: any EventPublisher
    private let clock: any ParleyClock
    private var members: Set<String>
    private var lastSeq: Int64
    private var needsResync = false
    /// The recent messages, oldest first, as edited (read by the attach and read extensions).
    var recent: Deque<MessageView> = []
    private let recentLimit: Int
    private var typing: TypingTracker
    private var appending = false
    private var turnWaiters: Deque<CheckedContinuation<Void, Never>> = []

    public var topic: String { "channel:\(channelID)" }

    /// Loads the channel under the lease `fence`: claims it in the store, recovers the log's
    /// tail into the store, and continues the `seq` from there. `lookup` asks the store about
    /// `client_msg_id`s (one shared by the node's channels batches their questions).
    public static func load(channelID: String, holder: String, fence: Int64, members: Set<String>, log: any MessageLog,
                            store: any MessageStore, lookup: ClientMessageLookup? = nil, sink: any MessageSink,
                            publisher: any EventPublisher, clock: any ParleyClock = SystemClock(), recentLimit: Int = 100,
                            typingTimeout: Duration = .seconds(5)) async throws -> ChannelServer {
        guard try await store.claim(channel: channelID, fence: fence) else { throw ChannelError.notOwner }
        let recovered = try await recover(channelID, fence: fence, log: log, store: store)
        await sink.persisted(channel: channelID, through: recovered)
        return ChannelServer(channelID: channelID, holder: holder, fence: fence, members: members, lastSeq: recovered, log: log,
                             store: store, lookup: lookup ?? ClientMessageLookup(store: store), sink: sink, publisher: publisher, clock: clock, recentLimit: recentLimit,
                             typing: TypingTracker(timeout: typingTimeout))
    }

    /// Writes every log entry above the store's last `seq` into the store, then trims the log;
    /// returns the channel's last `seq`.
    static func recover(_ channel: String, fence: Int64, log: any MessageLog, store: any MessageStore) async throws -> Int64 {
        let stored = try await storeLog(channel, fence: fence, log: log, store: store).through
        if stored > 0 { try await log.trim(through: [channel: stored]) }
        return stored
    }

    /// Writes the log's entries above the store's last `seq`, up to `seq`, into the store under
    /// `fence`, a page at a time; returns the store's last `seq` before and after.
    static func storeLog(_ channel: String, through seq: Int64 = .max, fence: Int64, log: any MessageLog,
                         store: any MessageStore) async throws -> (from: Int64, through: Int64) {
        let from = try await store.lastSeq(channel: channel)
        var stored = from
        while stored < seq {
            let page = try await log.entries(channel: channel, after: stored, through: seq, limit: 500)
            guard let last = page.last else { break }
            guard try await store.insert(page, fences: [channel: fence]).isEmpty else { throw ChannelError.notOwner }
            stored = last.seq
        }
        return (from, stored)
    }

    private init(channelID: String, holder: String, fence: Int64, members: Set<String>, lastSeq: Int64, log: any MessageLog,
                 store: any MessageStore, lookup: ClientMessageLookup, sink: any MessageSink, publisher: any EventPublisher, clock: any ParleyClock,
                 recentLimit: Int, typing: TypingTracker) {
        self.channelID = channelID
        self.holder = holder
        self.fence = fence
        self.members = members
        self.lastSeq = lastSeq
        self.log = log
        self.store = store
        self.lookup = lookup
        self.sink = sink
        self.publisher = publisher
        self.clock = clock
        self.recentLimit = recentLimit
        self.typing = typing
    }

    public var currentSeq: Int64 { lastSeq }

    /// False once a handoff began: every new request is refused with `notOwner` (the router
    /// sends it to the next owner).
    public private(set) var isAccepting = true

    /// Stops accepting requests and returns once the appends in flight have finished.
    public func stopAccepting() async {
        isAccepting = false
        await takeTurn()
        passTurn()
    }

    private func checkAccepting() throws {
        guard isAccepting else { throw ChannelError.notOwner }
    }

    public func isMember(_ user: String) -> Bool { members.contains(user) }
    public func addMember(_ user: String) { members.insert(user) }
    public func removeMember(_ user: String) { members.remove(user) }

    /// Accepts a message: returns it with its `seq` and `id` once it is in the durable log.
    /// A repeated `client_msg_id` of the same sender returns the message first accepted, and
    /// stores nothing.
    public func post(userID: String, body: String, clientMessageID: String?, threadRootID: String? = nil,
                     attachments: [String] = []) async throws -> MessageView {
        try checkAccepting()
        guard members.contains(userID) else { throw ChannelError.notAMember }
        guard sink.hasRoom else { throw ChannelError.unavailable("the node's backlog of messages for the store is full") }
        if let root = threadRootID {
            guard try await contains(messageID: root) else { throw ChannelError.notFound("thread root \(root)") }
        }
        // Ask the store about the client_msg_id while waiting for the turn. The log knows a
        // message it trimmed for `trimGrace` after: an answer younger than half of it misses
        // nothing in between.
        let key = clientMessageID.map { ClientMessageKey(channel: channelID, user: userID, clientMessageID: $0) }
        var asked = clock.now()
        var check = key.map { key in Task { [lookup] in try await lookup.find(key) } }
        await takeTurn()
        defer { passTurn() }
        try checkAccepting()
        try await backend { if needsResync { try await adoptLogTail() } }
        if let key, clock.now() - asked >= log.trimGrace * 0.5 {
            asked = clock.now()
            check = Task { [lookup] in try await lookup.find(key) }
        }
        if let check {
            do {
                if let match = try await check.value { return match }
            } catch {
                // The store is away: the log alone de-duplicates (it holds every message not yet
                // stored, and those trimmed within the grace). The lookup counts these.
            }
        }
        let message = MessageView(id: UUID().uuidString.lowercased(), channelID: channelID, seq: lastSeq + 1, userID: userID,
                                  body: body, threadRootID: threadRootID, clientMessageID: clientMessageID,
                                  createdAt: clock.wallMilliseconds(), attachments: attachments)
        let outcome: LogAppendOutcome
        do {
            outcome = try await log.append(message, holder: holder)
        } catch {
            // Perhaps written: the next turn adopts what the log holds.
            needsResync = true
            throw ChannelError.unavailable("\(error)")
        }
        switch outcome {
        case .appended:
            await accept(message)
            return message
        case .duplicate(let seq, let id):
            if let known = recent.first(where: { $0.id == id }) { return known }
            var earlier = message
            earlier.seq = seq
            earlier.id = id
            return earlier
        case .notOwner:
            throw ChannelError.notOwner
        case .staleSeq:
            // Someone appended behind our back: only possible after a lost lease.
            needsResync = true
            throw ChannelError.notOwner
        }
    }

    /// A message is in the log under `seq`: cache it, publish it, queue it for the store.
    private func accept(_ message: MessageView) async {
        lastSeq = message.seq
        remember(message)
        if typing.stop(message.userID) {
            publisher.publish(.typing(userID: message.userID, typing: false), topic: topic)
        }
        publisher.publish(.messageCreated(message), topic: topic)
        if let root = message.threadRootID {
            publisher.publish(.threadReply(message), topic: "thread:\(root)")
        }
        await sink.enqueue(message, fence: fence)
    }

    /// Adopts the log's entries above `lastSeq` (an append that failed after Redis wrote it).
    private func adoptLogTail() async throws {
        while true {
            let tail = try await log.entries(channel: channelID, after: lastSeq, limit: 500)
            guard !tail.isEmpty else { break }
            for message in tail { await accept(message) }
        }
        needsResync = false
    }

    /// Runs a pending resync outside a post (the router calls it on its tick), so an append
    /// that failed ambiguously is published and stored even if nobody posts again.
    public func resyncIfNeeded() async {
        guard needsResync else { return }
        await takeTurn()
        defer { passTurn() }
        try? await adoptLogTail()
    }

    /// Edits a message (its author only). The edit is acknowledged once PostgreSQL has it.
    public func edit(messageID: String, by user: String, body: String) async throws -> MessageView {
        var message = try await authored(messageID, by: user)
        message.body = body
        message.editedAt = clock.wallMilliseconds()
        try await save(message)
        publisher.publish(.messageUpdated(message), topic: topic)
        return message
    }

    /// Deletes a message (its author only): the body is cleared and `deleted_at` set.
    public func delete(messageID: String, by user: String) async throws -> MessageView {
        var message = try await authored(messageID, by: user)
        message.body = ""
        message.deletedAt = clock.wallMilliseconds()
        try await save(message)
        publisher.publish(.messageDeleted(channelID: channelID, messageID: message.id, seq: message.seq), topic: topic)
        return message
    }

    /// Whether message `id` belongs to this channel (cache, store, or log).
    public func contains(messageID id: String) async throws -> Bool {
        if recent.contains(where: { $0.id == id }) { return true }
        return try await storedMessage(id) != nil
    }

    /// Adds or removes `user`'s `emoji` on a message; returns emoji → who reacted.
    public func react(messageID: String, by user: String, emoji: String, present: Bool) async throws -> [String: [String]] {
        try checkAccepting()
        guard members.contains(user) else { throw ChannelError.notAMember }
        guard let message = try await storedMessage(messageID), message.deletedAt == nil else {
            throw ChannelError.notFound("message \(messageID)")
        }
        let reactions = try await backend {
            try await store.react(channel: channelID, messageID: message.id, user: user, emoji: emoji, present: present, fence: fence)
        }
        publisher.publish(present ? .reactionAdded(messageID: messageID, userID: user, emoji: emoji)
                                  : .reactionRemoved(messageID: messageID, userID: user, emoji: emoji), topic: topic)
        return reactions
    }

    /// Records that `user` read up to `seq` (at most the current one) and announces it;
    /// returns the recorded `seq` and how many are unread after it.
    public func markRead(_ user: String, seq: Int64) async throws -> (seq: Int64, unread: Int64) {
        try checkAccepting()
        guard members.contains(user) else { throw ChannelError.notAMember }
        let current = lastSeq
        let recorded = try await backend {
            try await store.markRead(channel: channelID, user: user, seq: min(seq, current), fence: fence)
        }
        publisher.publish(.readReceipt(userID: user, seq: recorded), topic: topic)
        return (recorded, max(0, current - recorded))
    }

    private func authored(_ id: String, by user: String) async throws -> MessageView {
        try checkAccepting()
        guard members.contains(user) else { throw ChannelError.notAMember }
        guard let message = try await storedMessage(id), message.deletedAt == nil else { throw ChannelError.notFound("message \(id)") }
        guard message.userID == user else { throw ChannelError.forbidden("only the author can change a message") }
        return message
    }

    /// Message `id` as it is now, made sure to be in the store with every message before it
    /// (so changing it leaves no hole in the store and the log holds no stale copy).
    private func storedMessage(_ id: String) async throws -> MessageView? {
        if let cached = recent.first(where: { $0.id == id }) {
            try await persist(through: cached.seq)
            return recent.first(where: { $0.id == id })
        }
        guard UUID(uuidString: id) != nil else { return nil }
        if let stored = try await backend({ try await store.message(channel: channelID, id: id) }) { return stored }
        // Older than the cache and not stored yet: store the log, then look again.
        try await persist(through: lastSeq)
        return try await backend { try await store.message(channel: channelID, id: id) }
    }

    /// Writes the log's entries through `seq` into the store (fenced), then trims them.
    private func persist(through seq: Int64) async throws {
        try await backend {
            let stored = try await Self.storeLog(channelID, through: seq, fence: fence, log: log, store: store)
            guard stored.from < seq else { return }
            guard stored.through >= seq else { throw ChannelError.gap((stored.through + 1)...seq) }
            try await log.trim(through: [channelID: stored.through])
            await sink.persisted(channel: channelID, through: stored.through)
        }
    }

    private func save(_ message: MessageView) async throws {
        let found = try await backend { try await store.update(message, fence: fence) }
        guard found else { throw ChannelError.notFound("message \(message.id)") }
        if let index = recent.firstIndex(where: { $0.id == message.id }) { recent[index] = message }
    }

    /// A typing signal; broadcasts only changes. `expireTyping` ends the silent ones.
    public func setTyping(_ user: String, _ isTyping: Bool) async {
        guard members.contains(user) else { return }
        let changed = isTyping ? typing.start(user, at: clock.now()) : typing.stop(user)
        if changed { publisher.publish(.typing(userID: user, typing: isTyping), topic: topic) }
    }

    public func expireTyping() async {
        for user in typing.expire(at: clock.now()) {
            publisher.publish(.typing(userID: user, typing: false), topic: topic)
        }
    }

    public var nextTypingDeadline: Moment? { typing.nextDeadline }

    private func remember(_ message: MessageView) {
        recent.append(message)
        if recent.count > recentLimit { recent.removeFirst() }
    }

    private func takeTurn() async {
        if appending {
            await withCheckedContinuation { turnWaiters.append($0) }
        } else {
            appending = true
        }
    }

    private func passTurn() {
        if let next = turnWaiters.popFirst() { next.resume() } else { appending = false }
    }
}

/// Runs a backend call: a refused fence means another node owns the channel now; any other
/// failure of a backend is `unavailable`.
public func backend<R>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R) async throws -> R {
    do {
        return try await body()
    } catch let error as ChannelError {
        throw error
    } catch StoreError.staleFence {
        throw ChannelError.notOwner
    } catch {
        throw ChannelError.unavailable("\(error)")
    }
}
