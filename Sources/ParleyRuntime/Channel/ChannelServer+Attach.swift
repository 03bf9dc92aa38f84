import ParleyCore

extension ChannelServer {
    /// Subscribes `subscriber` to the channel after delivering, in order, every message since
    /// `seq` (nil: live messages only). No gap and no duplicate: pages are read (from the log
    /// and store, which may suspend) up to the `seq` current at each read, until the recent
    /// cache covers the rest; then, in one step of this actor, the rest is delivered from the
    /// cache and the subscription made, so every later message reaches the subscriber exactly
    /// once, live. A message that cannot be read fails the attach (`gap`), never silently.
    public func attach(_ subscriber: any FrameSubscriber, to broadcaster: Broadcaster, after seq: Int64?) async throws {
        var delivered = min(seq ?? currentSeq, currentSeq)
        while delivered < currentSeq && !cacheCovers(after: delivered) {
            let page = try await messages(after: delivered, limit: 500)
            for message in page {
                guard await subscriber.deliverWhenReady(frame(message, for: subscriber)) else {
                    throw ChannelError.unavailable("the client went away")
                }
            }
            delivered = page.last!.seq
        }
        for message in recent where message.seq > delivered {
            guard subscriber.deliver(frame(message, for: subscriber)) else {
                throw ChannelError.unavailable("the client is too slow to catch up")
            }
        }
        broadcaster.subscribe(subscriber, to: topic)
    }

    private func cacheCovers(after seq: Int64) -> Bool {
        recent.first.map { $0.seq <= seq + 1 } ?? false
    }

    private func frame(_ message: MessageView, for subscriber: any FrameSubscriber) -> WebSocketMessage {
        subscriber.codec.encode(ServerEvent.messageCreated(message).frame(topic: topic))
    }
}
