import ParleyCore

extension ChannelServer {
    /// Subscribes `subscriber` to the channel after delivering, in order, every message since
    /// `seq` (nil: live messages only). No gap and no duplicate: pages are read (from the
    /// store or log, which may suspend) until the recent cache covers the rest; then, in one
    /// step of this actor, the rest is delivered from the cache and the subscription made, so
    /// every later message reaches the subscriber exactly once, live.
    public func attach(_ subscriber: any FrameSubscriber, to broadcaster: Broadcaster, after seq: Int64?) async throws {
        var delivered = seq ?? currentSeq
        while delivered < currentSeq && !cacheCovers(after: delivered) {
            let page = try await messages(after: delivered, limit: 500)
            guard let last = page.last else { break }
            for message in page {
                let frame = subscriber.codec.encode(ServerEvent.messageCreated(message).frame(topic: topic))
                guard await subscriber.deliverWhenReady(frame) else { throw ChannelError.unavailable("the client went away") }
            }
            delivered = last.seq
        }
        try deliver(recentMessages.filter { $0.seq > delivered }, to: subscriber)
        broadcaster.subscribe(subscriber, to: topic)
    }

    private func cacheCovers(after seq: Int64) -> Bool {
        recentMessages.first.map { $0.seq <= seq + 1 } ?? false
    }

    private func deliver(_ messages: [MessageView], to subscriber: any FrameSubscriber) throws {
        for message in messages {
            guard subscriber.deliver(subscriber.codec.encode(ServerEvent.messageCreated(message).frame(topic: topic))) else {
                throw ChannelError.unavailable("the client is too slow to catch up")
            }
        }
    }
}
