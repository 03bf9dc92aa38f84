import DequeModule
import Foundation
import Logging
import ParleyCore
import ServiceLifecycle
import Synchronization

/// The node's end of the cluster bus (DESIGN §3), and the one publish path for server events:
/// an event is delivered to this node's sockets (through the channel feeds for
/// `message_created`, so they see it in `seq` order) and published once to the other nodes.
///
/// Outgoing publications leave in the order they were made, in pipelined batches from one
/// sender. Incoming envelopes from this node are ignored; events go to local sockets,
/// requests to the handler (the channel router), replies to the request waiting for them,
/// controls to their handlers. The node subscribes to a client topic only while it has a
/// local subscriber; after the bus reconnects, the feeds catch up from the log.
public final class ClusterBusService: EventPublisher, Service {
    public typealias RequestHandler = @Sendable (_ body: JSONValue, _ from: NodeIdentity) async -> JSONValue
    public typealias ControlHandler = @Sendable (_ kind: String, _ body: JSONValue, _ from: NodeIdentity) async -> Void

    public struct Stats: Sendable, Hashable {
        public var published = 0
        public var received = 0
        public var ignored = 0
        public var malformed = 0
        public var requestsSent = 0
        public var requestsTimedOut = 0
        public var reconnects = 0
    }

    /// The topic every node listens to for cluster-wide controls.
    public static let clusterTopic = "cluster"

    public let identity: NodeIdentity
    private let bus: any ClusterBus
    public let broadcaster: Broadcaster
    public let feeds: ChannelFeeds
    private let logger: Logger
    private let outgoing = WorkQueue<(BusAddress, [UInt8])>()
    /// Topics whose local subscriber count crossed zero, for the subscription loop.
    private let activity = WorkQueue<String>()
    private let pending = Mutex<[String: Waiting]>([:])
    /// Set once the request sweep ended (the service stops): requests fail at once.
    private let stopped = Atomic<Bool>(false)
    private let handlers = Mutex<(request: RequestHandler?, control: ControlHandler?)>((nil, nil))
    private let counters = Mutex(Stats())
    private let probe = Mutex<(passed: Bool, token: String?)>((false, nil))

    public init(identity: NodeIdentity, bus: any ClusterBus, broadcaster: Broadcaster, log: any MessageLog,
                store: any MessageStore, logger: Logger = Logger(label: "parley.bus")) {
        self.identity = identity
        self.bus = bus
        self.broadcaster = broadcaster
        self.logger = logger
        feeds = ChannelFeeds(log: log, store: store, broadcaster: broadcaster,
                             subscribe: { topic in try await bus.subscribe(topic: topic) }, logger: logger)
        broadcaster.onTopicActivity { [weak self] topic, _ in self?.topicActivityChanged(topic) }
    }

    /// Sets who answers requests (the channel router) and controls (the node's wiring).
    public func handle(requests: @escaping RequestHandler) { handlers.withLock { $0.request = requests } }
    public func handle(controls: @escaping ControlHandler) { handlers.withLock { $0.control = controls } }

    public func stats() -> Stats { counters.withLock { $0 } }

    private let reconnectHandlers = Mutex<[@Sendable () async -> Void]>([])

    /// Runs `handler` each time the bus comes back after a loss (what was published meanwhile
    /// is gone: presence states are sent again, feeds catch up from the log).
    public func onReconnect(_ handler: @escaping @Sendable () async -> Void) {
        reconnectHandlers.withLock { $0.append(handler) }
    }

    /// Subscribes to `topic` on the bus and returns once the bus confirmed it, so that a state
    /// read after this misses no later event.
    public func subscribe(_ topic: String) async throws {
        try await bus.subscribe(topic: topic)
    }

    /// Delivers `event` to this node's sockets on `topic` only (a state sent again).
    public func deliverHere(_ event: ServerEvent, topic: String) {
        deliverLocally(event.name, payload: event.payload, topic: topic, event: event)
    }

    /// Whether a probe sent to this node's own inbox came back (the bus works end to end).
    public var probePassed: Bool { probe.withLock { $0.passed } }

    // MARK: Publishing

    public func publish(_ event: ServerEvent, topic: String) {
        deliverLocally(event.name, payload: event.payload, topic: topic, event: event)
        enqueue(topic: topic, node: nil, BusEnvelope(sender: identity, body: .event(topic: topic, event: event.name, payload: event.payload)))
    }

    /// A control for every node (`member_removed`, …); this node's handler runs too.
    public func broadcastControl(_ kind: String, _ body: JSONValue) async {
        await handlers.withLock { $0.control }?(kind, body, identity)
        enqueue(topic: Self.clusterTopic, node: nil, BusEnvelope(sender: identity, body: .control(kind: kind, body: body)))
    }

    /// A control for one node.
    public func sendControl(_ kind: String, _ body: JSONValue, to node: String) {
        enqueue(topic: nil, node: node, BusEnvelope(sender: identity, body: .control(kind: kind, body: body)))
    }

    /// Sends `body` to `node`'s inbox and waits up to `timeout` for its reply.
    public func request(_ body: JSONValue, to node: String, timeout: Duration) async throws -> JSONValue {
        let id = UUID().uuidString.lowercased()
        counters.withLock { $0.requestsSent += 1 }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // No timer per request: one sweep (`expireRequests`) fails those past their deadline.
                pending.withLock { $0[id] = Waiting(continuation: continuation, deadline: .now + timeout, node: node, timeout: timeout) }
                if stopped.load(ordering: .acquiring) {
                    pending.withLock { $0.removeValue(forKey: id) }?.continuation.resume(throwing: ChannelError.unavailable("the node is stopping"))
                    return
                }
                enqueue(topic: nil, node: node,
                        BusEnvelope(sender: identity, body: .request(id: id, replyTo: identity.name, body: body)))
            }
        } onCancel: {
            self.pending.withLock { $0.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// A request waiting for its reply.
    private struct Waiting {
        let continuation: CheckedContinuation<JSONValue, any Error>
        let deadline: ContinuousClock.Instant
        let node: String
        let timeout: Duration
    }

    /// Fails the requests whose deadline passed, every 50 ms (one loop for all of them).
    private func expireRequests() async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(50)) }
            let now = ContinuousClock.now
            let expired = pending.withLock { pending -> [Waiting] in
                let overdue = pending.filter { $0.value.deadline <= now }
                for id in overdue.keys { pending[id] = nil }
                return Array(overdue.values)
            }
            guard !expired.isEmpty else { continue }
            counters.withLock { $0.requestsTimedOut += expired.count }
            for waiting in expired {
                waiting.continuation.resume(throwing: ChannelError.unavailable("node \(waiting.node) did not answer within \(waiting.timeout)"))
            }
        }
        // Stopping: nothing will answer now.
        stopped.store(true, ordering: .releasing)
        let left = pending.withLock { pending in
            defer { pending.removeAll() }
            return Array(pending.values)
        }
        for waiting in left { waiting.continuation.resume(throwing: ChannelError.unavailable("the node is stopping")) }
    }

    private func enqueue(topic: String?, node: String?, _ envelope: BusEnvelope) {
        outgoing.push((topic.map(BusAddress.topic) ?? .node(node ?? identity.name), envelope.bytes))
    }

    private func deliverLocally(_ name: String, payload: JSONValue, topic: String, event: ServerEvent?) {
        if name == "message_created", topic.hasPrefix("channel:") {
            let message: MessageView?
            if case .messageCreated(let view)? = event { message = view } else { message = try? MessageView(json: payload) }
            if let message { feeds.receive(message) }
            return
        }
        broadcaster.publish(PhoenixFrame(topic: topic, event: name, json: payload))
    }

    // MARK: Subscriptions

    /// `topic` gained its first or lost its last local subscriber: the subscription loop
    /// brings the bus in line. This may run while a channel feed's lock is held (a subscriber
    /// attaching), so it only queues; one loop applies the changes in order, the last one wins.
    private func topicActivityChanged(_ topic: String) {
        activity.push(topic)
    }

    /// Subscribes to or leaves each changed topic on the bus to match whether it has local
    /// subscribers now.
    private func subscriptionLoop() async {
        while let topics = await activity.next(upTo: 256) {
            for topic in Set(topics) {
                if broadcaster.subscriberCount(topic) > 0 {
                    try? await bus.subscribe(topic: topic)
                } else if topic != Self.clusterTopic {
                    bus.unsubscribe(topic: topic)
                    feeds.topicIdle(topic)
                }
            }
        }
    }

    // MARK: Running

    /// Listens to the inbox and the cluster topic, probes the bus, then sends and receives
    /// until graceful shutdown.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.sendLoop() }
            group.addTask { await self.subscriptionLoop() }
            group.addTask { await self.bus.run { delivery in await self.receive(delivery) } }
            group.addTask { await self.probeUntilPassed() }
            group.addTask { await self.expireRequests() }
            group.addTask {
                try? await gracefulShutdown()
                self.outgoing.finish()
                self.activity.finish()
                // Give the last publications a moment to leave, then stop receiving.
                try? await Task.sleep(for: .milliseconds(200))
                self.bus.shutdown()
            }
        }
    }

    private func sendLoop() async {
        // Everything queued leaves in one round trip, in order.
        while let batch = await outgoing.next(upTo: 512) {
            do {
                try await bus.send(batch)
                counters.withLock { $0.published += batch.count }
            } catch {
                logger.warning("bus publish failed; the receivers recover from the log",
                               metadata: ["error": "\(error)", "count": "\(batch.count)"])
            }
        }
    }

    private func probeUntilPassed() async {
        while !probePassed && !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await bus.listen(inbox: identity.name)
                try await bus.subscribe(topic: Self.clusterTopic)
                let token = UUID().uuidString
                probe.withLock { $0.token = token }
                sendControl("probe", ["token": .string(token)], to: identity.name)
            } catch {
                logger.warning("the bus is not reachable yet", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    private func receive(_ delivery: BusDelivery) async {
        let bytes: [UInt8]
        switch delivery {
        case .reconnected:
            counters.withLock { $0.reconnects += 1 }
            logger.info("bus reconnected; the channel feeds catch up from the log")
            let handlers = reconnectHandlers.withLock { $0 }
            Task {
                await self.feeds.catchUpAll()
                for handler in handlers { await handler() }
            }
            return
        case .topic(_, let payload), .inbox(let payload):
            bytes = payload
        }
        let envelope: BusEnvelope
        do {
            envelope = try BusEnvelope(bytes: bytes)
        } catch {
            counters.withLock { $0.malformed += 1 }
            return
        }
        counters.withLock { $0.received += 1 }
        switch envelope.body {
        case .event(let topic, let event, let payload):
            guard envelope.sender != identity else { return counters.withLock { $0.ignored += 1 } }
            deliverLocally(event, payload: payload, topic: topic, event: nil)
        case .request(let id, let replyTo, let body):
            guard let handler = handlers.withLock({ $0.request }) else { return }
            let sender = envelope.sender
            Task {
                let answer = await handler(body, sender)
                self.enqueue(topic: nil, node: replyTo, BusEnvelope(sender: self.identity, body: .reply(id: id, body: answer)))
            }
        case .reply(let id, let body):
            pending.withLock { $0.removeValue(forKey: id) }?.continuation.resume(returning: body)
        case .control("probe", let body):
            guard envelope.sender == identity else { return }
            probe.withLock { probe in
                if body["token"]?.stringValue == probe.token { probe.passed = true }
            }
        case .control(let kind, let body):
            guard envelope.sender != identity else { return counters.withLock { $0.ignored += 1 } }
            await handlers.withLock { $0.control }?(kind, body, envelope.sender)
        }
    }
}

/// Work waiting for one consumer, in order; the consumer takes all that wait at once.
private final class WorkQueue<Element: Sendable>: Sendable {
    private struct State {
        var items: Deque<Element> = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }
    private let state = Mutex(State())

    func push(_ item: Element) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.finished else { return nil }
            state.items.append(item)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Up to `limit` items, waiting for the first; nil once finished and empty.
    func next(upTo limit: Int) async -> [Element]? {
        while true {
            let taken = state.withLock { state -> [Element]? in
                let count = min(limit, state.items.count)
                guard count > 0 else { return state.finished ? [] : nil }
                defer { state.items.removeFirst(count) }
                return Array(state.items.prefix(count))
            }
            if let taken { return taken.isEmpty ? nil : taken }
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Bool in
                    guard state.items.isEmpty && !state.finished else { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }
}
