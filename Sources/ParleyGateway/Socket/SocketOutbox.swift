import ParleyCore
import ParleyRuntime
import Synchronization

/// A socket's bounded outbound queue. Frames wait here for the socket's writer; when the
/// client reads too slowly and the queue fills, delivery fails, the queue closes and the
/// socket is disconnected — memory never grows without bound.
final class SocketOutbox: FrameSubscriber {
    let codec: PhoenixCodec
    let frames: AsyncStream<ParleyCore.WebSocketMessage>
    private let continuation: AsyncStream<ParleyCore.WebSocketMessage>.Continuation
    private let overflowed = Mutex(false)
    /// Frames queued and not yet taken by the writer.
    private let queued = Mutex(0)
    private let capacity: Int

    init(codec: PhoenixCodec, capacity: Int) {
        self.codec = codec
        self.capacity = capacity
        (frames, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(capacity))
    }

    func deliver(_ message: ParleyCore.WebSocketMessage) -> Bool {
        queued.withLock { $0 += 1 }
        switch continuation.yield(message) {
        case .enqueued: return true
        case .dropped:
            overflowed.withLock { $0 = true }
            continuation.finish()
            return false
        case .terminated: return false
        @unknown default: return false
        }
    }

    /// Waits while the queue is more than half full (a catch-up must not overflow it).
    func deliverWhenReady(_ message: ParleyCore.WebSocketMessage) async -> Bool {
        while queued.withLock({ $0 }) > capacity / 2 {
            if didOverflow || Task.isCancelled { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return deliver(message)
    }

    /// The writer took a frame off the queue.
    func taken() { queued.withLock { $0 -= 1 } }

    /// Queues a frame of this socket's own (a reply or a push), encoded for its serializer.
    @discardableResult
    func send(_ frame: PhoenixFrame) -> Bool { deliver(codec.encode(frame)) }

    var didOverflow: Bool { overflowed.withLock { $0 } }

    func close() { continuation.finish() }
}
