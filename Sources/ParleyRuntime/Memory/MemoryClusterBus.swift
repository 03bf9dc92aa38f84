import ParleyCore
import Synchronization

/// An in-process bus that several `MemoryClusterBus`es (nodes in one process, for tests)
/// share: delivers what one publishes to the others subscribed, in publish order.
public final class MemoryBusHub: Sendable {
    private let members = Mutex<[ObjectIdentifier: MemoryClusterBus]>([:])

    public init() {}

    func join(_ bus: MemoryClusterBus) { members.withLock { $0[ObjectIdentifier(bus)] = bus } }
    func leave(_ bus: MemoryClusterBus) { members.withLock { $0[ObjectIdentifier(bus)] = nil } }

    func publish(topic: String, _ payload: [UInt8]) {
        for bus in members.withLock({ Array($0.values) }) where bus.topics.contains(topic) {
            bus.enqueue(.topic(topic, payload))
        }
    }

    func send(toNode name: String, _ payload: [UInt8]) {
        for bus in members.withLock({ Array($0.values) }) where bus.inbox == name {
            bus.enqueue(.inbox(payload))
        }
    }
}

/// `ClusterBus` in memory, over a `MemoryBusHub`.
public final class MemoryClusterBus: ClusterBus {
    private let hub: MemoryBusHub
    private let state = Mutex<(topics: Set<String>, inbox: String?)>(([], nil))
    private let stream: AsyncStream<BusDelivery>
    private let continuation: AsyncStream<BusDelivery>.Continuation

    public init(hub: MemoryBusHub) {
        self.hub = hub
        (stream, continuation) = AsyncStream.makeStream()
        hub.join(self)
    }

    var inbox: String? { state.withLock { $0.inbox } }
    func enqueue(_ delivery: BusDelivery) { continuation.yield(delivery) }

    public func run(_ deliver: @Sendable (BusDelivery) async -> Void) async {
        for await delivery in stream { await deliver(delivery) }
    }

    public func listen(inbox node: String) async throws { state.withLock { $0.inbox = node } }
    public func send(_ batch: [(BusAddress, [UInt8])]) async throws {
        for (address, payload) in batch {
            switch address {
            case .topic(let topic): hub.publish(topic: topic, payload)
            case .node(let node): hub.send(toNode: node, payload)
            }
        }
    }
    public func subscribe(topic: String) async throws { _ = state.withLock { $0.topics.insert(topic) } }
    public func unsubscribe(topic: String) { _ = state.withLock { $0.topics.remove(topic) } }
    public var topics: Set<String> { state.withLock { $0.topics } }

    public func shutdown() {
        hub.leave(self)
        continuation.finish()
    }
}
