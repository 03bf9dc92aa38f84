import DequeModule
import Foundation
import ParleyCore

/// The actor of one channel on its owner node (DESIGN §2): it assigns the per-channel `seq`,
/// writes each message to the durable log before acknowledging it, publishes it once, and
/// hands it to the buffer for PostgreSQL.
///
/// Appends are strictly one at a time (a FIFO turn inside the actor), so `seq`s reach the log
/// in order and leave no holes. After a failed append the next one re-reads the log's last
/// `seq` first: a failure in flight may or may not have been written.
public actor ChannelServer {
    public nonisolated let channelID: String
    /// This node's incarnation: the lease holder the log checks.
    public nonisolated let holder: String
    private let log: any MessageLog
    private let store: any MessageStore
    private let sink: any MessageSink
    private let publisher: any EventPublisher
    private let clock: any ParleyClock
    private var members: Set<String>
    private var lastSeq: Int64
    private var needsResync = false
    /// The recent messages, oldest first (read by the attach extension).
    private(set) var recent: Deque<MessageView> = []
    private let recentLimit: Int
    private var typing: TypingTracker
    private var appending = false
    private var turnWaiters: Deque<CheckedContinuation<Void, Never>> = []

    public var topic: String { "channel:\(channelID)" }

    /// Loads the channel: `seq` continues from the higher of the store and the log.
    public static func load(channelID: String, holder: String, members: Set<String>, log: any MessageLog,
                            store: any MessageStore, sink: any MessageSink, publisher: any EventPublisher,
                            clock: any ParleyClock = SystemClock(), recentLimit: Int = 100,
                            typingTimeout: Duration = .seconds(5)) async throws -> ChannelServer {
        let stored = try await store.lastSeq(channel: channelID)
        let logged = try await log.lastSeq(channel: channelID) ?? 0
        return ChannelServer(channelID: channelID, holder: holder, members: members, lastSeq: max(stored, logged), log: log,
                             store: store, sink: sink, publisher: publisher, clock: clock, recentLimit: recentLimit,
                             typing: TypingTracker(timeout: typingTimeout))
    }

    private init(channelID: String, holder: String, members: Set<String>, lastSeq: Int64, log: any MessageLog,
                 store: any MessageStore, sink: any MessageSink, publisher: any EventPublisher, clock: any ParleyClock,
                 recentLimit: Int, typing: TypingTracker) {
        self.channelID = channelID
        self.holder = holder
        self.members = members
        self.lastSeq = lastSeq
        self.log = log
        self.store = store
        self.sink = sink
        self.publisher = publisher
        self.clock = clock
        self.recentLimit = recentLimit
        self.typing = typing
    }

    public var currentSeq: Int64 { lastSeq }

    public func isMember(_ user: String) -> Bool { members.contains(user) }
    public func addMember(_ user: String) { members.insert(user) }
    public func removeMember(_ user: String) { members.remove(user) }

    /// Accepts a message: returns it with its `seq` and `id` once it is in the durable log.
    /// A repeated `clientMessageID` returns the message first accepted, and stores nothing.
    public func post(userID: String, body: String, clientMessageID: String?, threadRootID: String? = nil) async throws -> MessageView {
        guard members.contains(userID) else { throw ChannelError.notAMember }
        if let root = threadRootID {
            do {
                guard try await contains(messageID: root) else { throw ChannelError.notFound("thread root \(root)") }
            } catch let error as ChannelError {
                throw error
            } catch {
                throw ChannelError.unavailable("\(error)")
            }
        }
        await takeTurn()
        defer { passTurn() }
        if needsResync {
            do {
                lastSeq = max(lastSeq, try await log.lastSeq(channel: channelID) ?? 0)
                needsResync = false
            } catch {
                throw ChannelError.unavailable("\(error)")
            }
        }
        var message = MessageView(id: UUID().uuidString.lowercased(), channelID: channelID, seq: lastSeq + 1, userID: userID,
                                  body: body, threadRootID: threadRootID, clientMessageID: clientMessageID,
                                  createdAt: clock.wallMilliseconds())
        let outcome: LogAppendOutcome
        do {
            outcome = try await log.append(message, holder: holder)
        } catch {
            needsResync = true
            throw ChannelError.unavailable("\(error)")
        }
        switch outcome {
        case .appended:
            lastSeq = message.seq
        case .duplicate(let seq, let id):
            if let known = recent.first(where: { $0.id == id }) { return known }
            message.seq = seq
            message.id = id
            return message
        case .notOwner:
            throw ChannelError.notOwner
        case .staleSeq:
            // Someone appended behind our back: only possible after a lost lease.
            needsResync = true
            throw ChannelError.notOwner
        }
        remember(message)
        if typing.stop(userID) {
            publisher.publish(.typing(userID: userID, typing: false), topic: topic)
        }
        publisher.publish(.messageCreated(message), topic: topic)
        if let root = threadRootID {
            publisher.publish(.threadReply(message), topic: "thread:\(root)")
        }
        await sink.enqueue(message)
        return message
    }

    /// Everything after `seq`, oldest first, for a client catching up: from the cache, the
    /// log, or the store, whichever holds it. `limit` bounds one answer; ask again for more.
    public func messages(after seq: Int64, limit: Int) async throws -> [MessageView] {
        if let first = recent.first, first.seq <= seq + 1 {
            return Array(recent.filter { $0.seq > seq }.prefix(limit))
        }
        let upper = lastSeq
        guard seq < upper else { return [] }
        var found = try await store.messages(channel: channelID, seqs: (seq + 1)...upper, limit: limit)
        let next = (found.last?.seq ?? seq)
        if found.count < limit && next < upper {
            found += try await log.entries(channel: channelID, after: next, limit: limit - found.count)
        }
        return found
    }

    /// The `limit` messages before `seq`, oldest first (history pages).
    public func messages(before seq: Int64, limit: Int) async throws -> [MessageView] {
        let cached = recent.filter { $0.seq < seq }
        if let first = cached.first, cached.count >= limit || first.seq == 1 {
            return Array(cached.suffix(limit))
        }
        var page = try await store.messages(channel: channelID, before: seq, limit: limit)
        // Messages newer than the store (still in the log) complete the page.
        let newestStored = page.last?.seq ?? 0
        let fromLog = try await log.entries(channel: channelID, after: newestStored, limit: limit).filter { $0.seq < seq }
        page = Array((page + fromLog).suffix(limit))
        return page
    }

    /// A history page (`load_history`): after `after` (oldest first), before `before`, or the
    /// newest `limit` when neither is given.
    public func history(before: Int64?, after: Int64?, limit: Int64) async throws -> [MessageView] {
        if let after { return try await messages(after: after, limit: Int(limit)) }
        return try await messages(before: before ?? lastSeq + 1, limit: Int(limit))
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

    /// Whether message `id` belongs to this channel (cache or store).
    public func contains(messageID id: String) async throws -> Bool {
        if recent.contains(where: { $0.id == id }) { return true }
        return try await store.message(channel: channelID, id: id) != nil
    }

    /// Adds or removes `user`'s `emoji` on a message; returns emoji → who reacted.
    public func react(messageID: String, by user: String, emoji: String, present: Bool) async throws -> [String: [String]] {
        guard members.contains(user) else { throw ChannelError.notAMember }
        let message: MessageView
        if let cached = recent.first(where: { $0.id == messageID }) {
            // Possibly not in PostgreSQL yet: reactions reference the row, so write it first.
            message = cached
            do { try await store.upsert(cached) } catch { throw ChannelError.unavailable("\(error)") }
        } else if let stored = try await store.message(channel: channelID, id: messageID) {
            message = stored
        } else {
            throw ChannelError.notFound("message \(messageID)")
        }
        guard message.deletedAt == nil else { throw ChannelError.notFound("message \(messageID)") }
        let reactions: [String: [String]]
        do {
            reactions = try await store.react(messageID: messageID, user: user, emoji: emoji, present: present)
        } catch {
            throw ChannelError.unavailable("\(error)")
        }
        publisher.publish(present ? .reactionAdded(messageID: messageID, userID: user, emoji: emoji)
                                  : .reactionRemoved(messageID: messageID, userID: user, emoji: emoji), topic: topic)
        return reactions
    }

    private func authored(_ id: String, by user: String) async throws -> MessageView {
        guard members.contains(user) else { throw ChannelError.notAMember }
        let found: MessageView?
        if let cached = recent.first(where: { $0.id == id }) {
            found = cached
        } else {
            found = try await store.message(channel: channelID, id: id)
        }
        guard let message = found, message.deletedAt == nil else { throw ChannelError.notFound("message \(id)") }
        guard message.userID == user else { throw ChannelError.forbidden("only the author can change a message") }
        return message
    }

    private func save(_ message: MessageView) async throws {
        do {
            try await store.upsert(message)
        } catch {
            throw ChannelError.unavailable("\(error)")
        }
        if let index = recent.firstIndex(where: { $0.id == message.id }) { recent[index] = message }
    }

    /// Announces that `user` has read up to `seq` (already recorded by the caller).
    public func announceRead(_ user: String, seq: Int64) {
        publisher.publish(.readReceipt(userID: user, seq: seq), topic: topic)
    }

    /// A typing signal; broadcasts only changes. Call `expireTyping` on the tracker's deadline.
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
