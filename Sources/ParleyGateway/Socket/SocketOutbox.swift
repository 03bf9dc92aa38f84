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

    init(codec: PhoenixCodec, capacity: Int) {
        self.codec = codec
        (frames, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(capacity))
    }

    func deliver(_ message: ParleyCore.WebSocketMessage) -> Bool {
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

    /// Queues a frame of this socket's own (a reply or a push), encoded for its serializer.
    @discardableResult
    func send(_ frame: PhoenixFrame) -> Bool { deliver(codec.encode(frame)) }

    var didOverflow: Bool { overflowed.withLock { $0 } }

    func close() { continuation.finish() }
}
