import DequeModule
import Logging
import ParleyCore
import Synchronization

/// The edge of each channel with local subscribers (DESIGN §3, "reads at the edge"): delivers
/// `message_created` to this node's sockets in `seq` order, exactly once, whichever node
/// owns the channel, and repairs a hole (a publish the bus lost, or reordered) from the log
/// and the store before going on.
///
/// A feed starts at the channel's last `seq` read *after* the bus confirmed the topic's
/// subscription, so every later message reaches it by the bus or by a repair. Subscribers
/// attach to it (catch-up from `ChannelHistory`, then the rest from the feed's recent cache
/// and the subscription in one step under its lock), so what they see is contiguous.
public final class ChannelFeeds: Sendable {
    private let log: any MessageLog
    private let store: any MessageStore
    private let broadcaster: Broadcaster
    private let subscribe: @Sendable (String) async throws -> Void
    private let logger: Logger
    private let feeds = Mutex<[String: ChannelFeed]>([:])
    private let counters = Mutex<(repaired: Int, repairs: Int, failedRepairs: Int)>((0, 0, 0))

    /// `subscribe` makes the bus deliver a topic and returns once it does.
    public init(log: any MessageLog, store: any MessageStore, broadcaster: Broadcaster,
                subscribe: @escaping @Sendable (String) async throws -> Void, logger: Logger = Logger(label: "parley.feeds")) {
        self.log = log
        self.store = store
        self.broadcaster = broadcaster
        self.subscribe = subscribe
        self.logger = logger
    }

    /// Messages delivered by repairs, and how many repairs ran.
    public var repairStats: (repaired: Int, repairs: Int, failedRepairs: Int) { counters.withLock { $0 } }

    /// The feed of `channel`, opened (bus subscription confirmed, last `seq` read) if needed.
    public func open(_ channel: String) async throws -> ChannelFeed {
        if let feed = feeds.withLock({ $0[channel] }), !feed.isClosed { return feed }
        let topic = "channel:\(channel)"
        try await backend { try await subscribe(topic) }
        let history = ChannelHistory(channel: channel, log: log, store: store)
        let last = try await history.lastSeq()
        let fresh = ChannelFeed(history: history, topic: topic, lastSeq: last, broadcaster: broadcaster, owner: self)
        return feeds.withLock { feeds in
            if let existing = feeds[channel], !existing.isClosed { return existing }
            feeds[channel] = fresh
            return fresh
        }
    }

    /// The read path of `channel` (catch-up, history, thread roots), on this node.
    public func history(of channel: String) -> ChannelHistory {
        ChannelHistory(channel: channel, log: log, store: store)
    }

    /// A history page of `channel` read here (bounded by the feed's `seq` when one is open, by
    /// the log's and store's otherwise).
    public func history(_ channel: String, before: Int64?, after: Int64?, limit: Int64) async throws -> [MessageView] {
        let reader = history(of: channel)
        let upper: Int64
        if let feed = feeds.withLock({ $0[channel] }), !feed.isClosed { upper = feed.lastSeq } else { upper = try await reader.lastSeq() }
        return try await reader.history(before: before, after: after, limit: limit, upper: upper)
    }

    /// A `message_created` from the owner (this node's or another's, by the bus).
    public func receive(_ message: MessageView) {
        feeds.withLock { $0[message.channelID] }?.receive(message)
    }

    /// `topic` has no local subscriber any more: its feed closes (a later join opens a new one).
    public func topicIdle(_ topic: String) {
        guard topic.hasPrefix("channel:") else { return }
        let channel = String(topic.dropFirst("channel:".count))
        feeds.withLock { feeds in
            guard let feed = feeds[channel], feed.closeIfUnused() else { return }
            feeds[channel] = nil
        }
    }

    /// After the bus came back (publishes in between were lost), every feed reads what it
    /// missed (`thorough`: the log and the store); also run now and then with the log alone
    /// (one Redis read per feed, none of PostgreSQL), so a lost last message does not wait for
    /// the next one.
    public func catchUpAll(thorough: Bool = true) async {
        for feed in feeds.withLock({ Array($0.values) }) {
            let last = thorough ? try? await feed.history.lastSeq() : try? await log.lastSeq(channel: feed.history.channel)
            if let last { feed.repair(through: last) }
        }
    }

    func recordRepair(messages: Int, failed: Bool) {
        counters.withLock {
            $0.repairs += 1
            $0.repaired += messages
            if failed { $0.failedRepairs += 1 }
        }
    }

    var warn: Logger { logger }
}

/// One channel's edge; see `ChannelFeeds`.
public final class ChannelFeed: Sendable {
    let history: ChannelHistory
    let topic: String
    private let broadcaster: Broadcaster
    private unowned let owner: ChannelFeeds
    private static let recentLimit = 200

    private struct State {
        var lastSeq: Int64
        var recent: Deque<MessageView> = []
        /// Messages above `lastSeq + 1`, waiting for the hole below them to be repaired.
        var waiting: [Int64: MessageView] = [:]
        var repairing = false
        var closed = false
        /// Subscribers are attaching (the feed must not close under them).
        var attaching = 0
    }

    private let state: Mutex<State>

    init(history: ChannelHistory, topic: String, lastSeq: Int64, broadcaster: Broadcaster, owner: ChannelFeeds) {
        self.history = history
        self.topic = topic
        self.broadcaster = broadcaster
        self.owner = owner
        state = Mutex(State(lastSeq: lastSeq))
    }

    var isClosed: Bool { state.withLock { $0.closed } }
    public var lastSeq: Int64 { state.withLock { $0.lastSeq } }

    /// Closes the feed if nobody is attaching; true when closed.
    func closeIfUnused() -> Bool {
        state.withLock { state in
            guard state.attaching == 0, broadcaster.subscriberCount(topic) == 0 else { return false }
            state.closed = true
            return true
        }
    }

    func receive(_ message: MessageView) {
        let gap = state.withLock { state -> ClosedRange<Int64>? in
            guard !state.closed, message.seq > state.lastSeq else { return nil }
            state.waiting[message.seq] = message
            drain(&state)
            guard let lowest = state.waiting.keys.min(), !state.repairing else { return nil }
            state.repairing = true
            return (state.lastSeq + 1)...(lowest - 1)
        }
        if let gap { startRepair(gap) }
    }

    /// Reads what is missing through `seq` (a hole, or after the bus came back).
    func repair(through seq: Int64) {
        let gap = state.withLock { state -> ClosedRange<Int64>? in
            guard !state.closed, seq > state.lastSeq, !state.repairing else { return nil }
            state.repairing = true
            return (state.lastSeq + 1)...seq
        }
        if let gap { startRepair(gap) }
    }

    private func startRepair(_ gap: ClosedRange<Int64>) {
        Task { await self.runRepair(gap) }
    }

    private func runRepair(_ initial: ClosedRange<Int64>) async {
        var gap: ClosedRange<Int64>? = initial
        var attempts = 0
        while let range = gap {
            var found: [MessageView] = []
            var failed = false
            do {
                var after = range.lowerBound - 1
                while after < range.upperBound {
                    let page = try await history.messages(after: after, upper: range.upperBound, limit: 500)
                    guard let last = page.last else { break }
                    found += page
                    after = last.seq
                }
            } catch {
                failed = true
                owner.warn.warning("repairing a channel's feed failed; retrying", metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
            owner.recordRepair(messages: found.count, failed: failed)
            if failed {
                attempts += 1
                try? await Task.sleep(for: .milliseconds(min(2000, 100 << min(attempts, 5))))
            }
            gap = state.withLock { state -> ClosedRange<Int64>? in
                for message in found where message.seq > state.lastSeq { state.waiting[message.seq] = message }
                drain(&state)
                guard !state.closed, let lowest = state.waiting.keys.min() else {
                    state.repairing = false
                    return nil
                }
                return (state.lastSeq + 1)...(lowest - 1)
            }
        }
    }

    /// Delivers the waiting messages that follow `lastSeq` without a hole. A closed feed
    /// delivers nothing: the topic may already have a new feed (a repair still running when
    /// this one closed would otherwise publish a second copy to its subscribers).
    private func drain(_ state: inout State) {
        guard !state.closed else {
            state.waiting.removeAll()
            return
        }
        while let next = state.waiting.removeValue(forKey: state.lastSeq + 1) {
            state.lastSeq = next.seq
            state.recent.append(next)
            if state.recent.count > Self.recentLimit { state.recent.removeFirst() }
            broadcaster.publish(ServerEvent.messageCreated(next).frame(topic: topic))
        }
        // Anything at or below lastSeq that waits is a duplicate.
        for seq in state.waiting.keys where seq <= state.lastSeq { state.waiting[seq] = nil }
    }

    /// Subscribes `subscriber` after delivering, in order, every message since `seq` (nil:
    /// live messages only). Pages are read up to the feed's `seq` at each read until its recent
    /// cache covers the rest; then, under the feed's lock, the rest is delivered from the
    /// cache and the subscription made, so every later message reaches it exactly once. A
    /// message that cannot be read fails the attach (`gap`), never silently.
    public func attach(_ subscriber: any FrameSubscriber, after seq: Int64?) async throws {
        state.withLock { $0.attaching += 1 }
        defer { state.withLock { $0.attaching -= 1 } }
        let start = state.withLock { $0.lastSeq }
        var delivered = min(seq ?? start, start)
        while true {
            let (upper, covered) = state.withLock { state in
                (state.lastSeq, state.recent.first.map { $0.seq <= delivered + 1 } ?? false)
            }
            if delivered < upper && !covered {
                let page = try await history.messages(after: delivered, upper: upper, limit: 500)
                for message in page {
                    guard await subscriber.deliverWhenReady(frame(message, for: subscriber)) else {
                        throw ChannelError.unavailable("the client went away")
                    }
                }
                delivered = page.last!.seq
                continue
            }
            let subscribed = try state.withLock { state -> Bool in
                guard !state.closed else { throw ChannelError.unavailable("the channel's feed closed; join again") }
                // More arrived meanwhile than the cache still holds: read on before subscribing.
                if state.lastSeq > delivered, !(state.recent.first.map { $0.seq <= delivered + 1 } ?? false) { return false }
                for message in state.recent where message.seq > delivered {
                    guard subscriber.deliver(frame(message, for: subscriber)) else {
                        throw ChannelError.unavailable("the client is too slow to catch up")
                    }
                }
                broadcaster.subscribe(subscriber, to: topic)
                return true
            }
            if subscribed { return }
        }
    }

    private func frame(_ message: MessageView, for subscriber: any FrameSubscriber) -> WebSocketMessage {
        subscriber.codec.encode(ServerEvent.messageCreated(message).frame(topic: topic))
    }
}
