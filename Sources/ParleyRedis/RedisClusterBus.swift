import ParleyCore

/// `ClusterBus` on Redis pub/sub: topics are `…:topic:{topic}`, inboxes `…:inbox:{node}`,
/// received on the subscriber's own connection (resubscribed after a loss, then
/// `.reconnected`), published through the command client.
public final class RedisClusterBus: ClusterBus {
    private let client: RedisClient
    private let subscriber: RedisSubscriber
    private let keys: RedisKeyspace
    private let topicHead: String
    private let inboxHead: String

    public init(client: RedisClient, subscriber: RedisSubscriber, keys: RedisKeyspace) {
        self.client = client
        self.subscriber = subscriber
        self.keys = keys
        topicHead = keys.topic("")
        inboxHead = keys.inbox(node: "")
    }

    public func run(_ deliver: @Sendable (BusDelivery) async -> Void) async {
        for await event in subscriber.events {
            switch event {
            case .message(let channel, let payload):
                if channel.hasPrefix(topicHead) {
                    await deliver(.topic(String(channel.dropFirst(topicHead.count)), payload))
                } else if channel.hasPrefix(inboxHead) {
                    await deliver(.inbox(payload))
                }
            case .reconnected:
                await deliver(.reconnected)
            case .disconnected:
                break
            }
        }
    }

    public func listen(inbox node: String) async throws {
        try await subscriber.subscribe([keys.inbox(node: node)])
    }

    public func send(_ batch: [(BusAddress, [UInt8])]) async throws {
        let commands = batch.map { address, payload in
            switch address {
            case .topic(let topic): return RedisCommand("PUBLISH", keys.topic(topic), payload)
            case .node(let node): return RedisCommand("PUBLISH", keys.inbox(node: node), payload)
            }
        }
        let replies = try await client.pipeline(commands)
        if let failure = replies.first(where: { $0.errorMessage != nil }) { throw RedisError.reply(failure.errorMessage ?? "") }
    }

    public func subscribe(topic: String) async throws {
        try await subscriber.subscribe([keys.topic(topic)])
    }

    public func unsubscribe(topic: String) {
        subscriber.unsubscribe([keys.topic(topic)])
    }

    public var topics: Set<String> {
        Set(subscriber.subscriptions.filter { $0.hasPrefix(topicHead) }.map { String($0.dropFirst(topicHead.count)) })
    }

    public func shutdown() { subscriber.shutdown() }
}
