import ParleyCore
import Synchronization

/// A local socket that receives frames for the topics it joined.
public protocol FrameSubscriber: AnyObject, Sendable {
    /// The serializer the socket speaks.
    var codec: PhoenixCodec { get }
    /// Queues `message` for the socket; false when its outbound queue is full (the socket is
    /// then too slow and gets disconnected by its owner). Must not block or call back into
    /// the broadcaster: it runs under the topic's lock.
    func deliver(_ message: WebSocketMessage) -> Bool
    /// Queues `message` once the queue has room, waiting for the socket to drain (catch-up of
    /// a long backlog); false when the socket is gone.
    func deliverWhenReady(_ message: WebSocketMessage) async -> Bool
    /// The broadcaster closed `topic` (its channel stopped): nothing more arrives on it until
    /// the socket joins it again.
    func topicClosed(_ topic: String)
    /// The user this subscriber joined `topic` as, if it says.
    func user(on topic: String) -> String?
}

extension FrameSubscriber {
    public func deliverWhenReady(_ message: WebSocketMessage) async -> Bool { deliver(message) }
    public func topicClosed(_ topic: String) {}
    public func user(on topic: String) -> String? { nil }
}

/// The one way anything is published (DESIGN §1): encodes each event once per serializer in
/// use, however many sockets receive it, and fans it out to the local subscribers of its
/// topic. `ClusterBusService` publishes through it to the other nodes and hands it what they publish.
///
/// Deliveries to a topic happen under that topic's lock, so once `unsubscribe` returns the
/// subscriber receives nothing more from it (a socket that left, or whose channel errored,
/// never sees a message it would see again on rejoining).
public final class Broadcaster: EventPublisher {
    public struct Stats: Sendable, Hashable {
        public var published = 0
        public var deliveries = 0
        /// Deliveries refused by a full socket queue.
        public var dropped = 0
        public var encodings = 0
        public var topics = 0
        public var subscriptions = 0
    }

    /// One topic's subscribers. An entry emptied is dead: it is never reused, so the topic map
    /// and an entry's lock are never held together.
    private final class Subscribers: Sendable {
        let state = Mutex<(members: [ObjectIdentifier: any FrameSubscriber], dead: Bool)>(([:], false))
    }

    private let topics = Mutex<[String: Subscribers]>([:])
    private let counters = Mutex(Stats())
    private let activity = Mutex<(@Sendable (String, Bool) -> Void)?>(nil)

    public init() {}

    /// Calls `hook(topic, true)` when a topic gets its first local subscriber and
    /// `hook(topic, false)` when it loses its last (the node subscribes to the cluster topic
    /// only in between). Set once, before sockets arrive; called outside the broadcaster's locks.
    public func onTopicActivity(_ hook: @escaping @Sendable (String, Bool) -> Void) {
        activity.withLock { $0 = hook }
    }

    public func subscribe(_ subscriber: any FrameSubscriber, to topic: String) {
        while true {
            let (entry, isNew) = topics.withLock { topics in
                if let entry = topics[topic] { return (entry, false) }
                let fresh = Subscribers()
                topics[topic] = fresh
                return (fresh, true)
            }
            let added = entry.state.withLock { state -> Bool in
                guard !state.dead else { return false }
                state.members[ObjectIdentifier(subscriber)] = subscriber
                return true
            }
            if added {
                if isNew { activity.withLock { $0 }?(topic, true) }
                return
            }
            remove(topic, entry)
        }
    }

    public func unsubscribe(_ subscriber: any FrameSubscriber, from topic: String) {
        guard let entry = topics.withLock({ $0[topic] }) else { return }
        let emptied = entry.state.withLock { state -> Bool in
            state.members[ObjectIdentifier(subscriber)] = nil
            if state.members.isEmpty { state.dead = true }
            return state.dead
        }
        if emptied { remove(topic, entry) }
    }

    /// Local subscribers of `topic` (a node subscribes to the cluster topic while this is > 0).
    public func subscriberCount(_ topic: String) -> Int {
        topics.withLock { $0[topic] }?.state.withLock { $0.members.count } ?? 0
    }

    public func publish(_ event: ServerEvent, topic: String) {
        publish(event.frame(topic: topic))
    }

    /// Encodes `frame` at most once per serializer and delivers it to every local subscriber.
    /// Returns the subscribers whose queue was full.
    @discardableResult
    public func publish(_ frame: PhoenixFrame) -> [any FrameSubscriber] {
        let entry = topics.withLock { $0[frame.topic] }
        var encoded: [PhoenixCodec: WebSocketMessage] = [:]
        var full: [any FrameSubscriber] = []
        let count = entry?.state.withLock { state in
            for subscriber in state.members.values {
                let codec = subscriber.codec
                let message = encoded[codec] ?? codec.encode(frame)
                encoded[codec] = message
                if !subscriber.deliver(message) { full.append(subscriber) }
            }
            return state.members.count
        } ?? 0
        counters.withLock { stats in
            stats.published += 1
            stats.deliveries += count - full.count
            stats.dropped += full.count
            stats.encodings += encoded.count
        }
        return full
    }

    public func close(_ topic: String, with event: ServerEvent) { close(topic, with: event.frame(topic: topic)) }

    /// Delivers `frame` to the subscribers of `topic` that `which` selects (all by default) and
    /// unsubscribes them, in one step: each is told (`topicClosed`) and receives nothing more
    /// until it subscribes again.
    public func close(_ topic: String, with frame: PhoenixFrame,
                      where which: (any FrameSubscriber) -> Bool = { _ in true }) {
        guard let entry = topics.withLock({ $0[topic] }) else { return }
        let (closed, emptied) = entry.state.withLock { state -> ([any FrameSubscriber], Bool) in
            var encoded: [PhoenixCodec: WebSocketMessage] = [:]
            var closed: [any FrameSubscriber] = []
            for (key, subscriber) in state.members where which(subscriber) {
                let message = encoded[subscriber.codec] ?? subscriber.codec.encode(frame)
                encoded[subscriber.codec] = message
                _ = subscriber.deliver(message)
                state.members[key] = nil
                closed.append(subscriber)
            }
            if state.members.isEmpty { state.dead = true }
            return (closed, state.dead)
        }
        if emptied { remove(topic, entry) }
        for subscriber in closed { subscriber.topicClosed(topic) }
    }

    private func remove(_ topic: String, _ entry: Subscribers) {
        let removed = topics.withLock { topics -> Bool in
            guard topics[topic] === entry else { return false }
            topics[topic] = nil
            return true
        }
        if removed { activity.withLock { $0 }?(topic, false) }
    }

    /// Topics with local subscribers.
    public var activeTopics: [String] { topics.withLock { Array($0.keys) } }

    public func stats() -> Stats {
        let entries = topics.withLock { Array($0.values) }
        var stats = counters.withLock { $0 }
        stats.topics = entries.count
        stats.subscriptions = entries.reduce(0) { $0 + $1.state.withLock { $0.members.count } }
        return stats
    }
}
