import ParleyCore
import Synchronization

/// A local socket that receives frames for the topics it joined.
public protocol FrameSubscriber: AnyObject, Sendable {
    /// The serializer the socket speaks.
    var codec: PhoenixCodec { get }
    /// Queues `message` for the socket; false when its outbound queue is full (the socket is
    /// then too slow and gets disconnected by its owner).
    func deliver(_ message: WebSocketMessage) -> Bool
    /// Queues `message` once the queue has room, waiting for the socket to drain (catch-up of
    /// a long backlog); false when the socket is gone.
    func deliverWhenReady(_ message: WebSocketMessage) async -> Bool
}

extension FrameSubscriber {
    public func deliverWhenReady(_ message: WebSocketMessage) async -> Bool { deliver(message) }
}

/// The one way anything is published (DESIGN §1): encodes each event once per serializer in
/// use, however many sockets receive it, and fans it out to the local subscribers of its
/// topic. (The cluster bus publish joins here when the cluster lands.)
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

    private struct Entry { let subscriber: any FrameSubscriber }
    private let state = Mutex<(topics: [String: [ObjectIdentifier: Entry]], stats: Stats)>(([:], Stats()))

    public init() {}

    public func subscribe(_ subscriber: any FrameSubscriber, to topic: String) {
        state.withLock { $0.topics[topic, default: [:]][ObjectIdentifier(subscriber)] = Entry(subscriber: subscriber) }
    }

    public func unsubscribe(_ subscriber: any FrameSubscriber, from topic: String) {
        state.withLock { state in
            state.topics[topic]?[ObjectIdentifier(subscriber)] = nil
            if state.topics[topic]?.isEmpty == true { state.topics[topic] = nil }
        }
    }

    /// Local subscribers of `topic` (a node subscribes to the cluster topic while this is > 0).
    public func subscriberCount(_ topic: String) -> Int { state.withLock { $0.topics[topic]?.count ?? 0 } }

    public func publish(_ event: ServerEvent, topic: String) {
        publish(event.frame(topic: topic))
    }

    /// Encodes `frame` at most once per serializer and delivers it to every local subscriber.
    /// Returns the subscribers whose queue was full.
    @discardableResult
    public func publish(_ frame: PhoenixFrame) -> [any FrameSubscriber] {
        let subscribers = state.withLock { $0.topics[frame.topic].map { Array($0.values) } ?? [] }
        var encoded: [PhoenixCodec: WebSocketMessage] = [:]
        var full: [any FrameSubscriber] = []
        for entry in subscribers {
            let codec = entry.subscriber.codec
            let message = encoded[codec] ?? codec.encode(frame)
            encoded[codec] = message
            if !entry.subscriber.deliver(message) { full.append(entry.subscriber) }
        }
        state.withLock { state in
            state.stats.published += 1
            state.stats.deliveries += subscribers.count - full.count
            state.stats.dropped += full.count
            state.stats.encodings += encoded.count
        }
        return full
    }

    public func stats() -> Stats {
        state.withLock { state in
            var stats = state.stats
            stats.topics = state.topics.count
            stats.subscriptions = state.topics.values.reduce(0) { $0 + $1.count }
            return stats
        }
    }
}
