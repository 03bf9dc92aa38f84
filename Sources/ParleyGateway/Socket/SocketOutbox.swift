import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import ParleyCore
import ParleyRuntime
import Synchronization

/// A socket's bounded outbound path. Frames go straight to the socket's NIO channel through
/// its event loop's `WriteCoalescer` (no task per socket to wake); a frame is in flight until
/// the channel has written it to the socket. When the client reads too slowly and more than
/// `capacity` frames are in flight, delivery fails and the socket is closed with 1008 —
/// memory never grows without bound.
final class SocketOutbox: FrameSubscriber {
    let codec: PhoenixCodec
    let channel: any Channel
    private let capacity: Int
    private let coalescer: WriteCoalescer
    /// Frames handed to the channel and not yet written to the socket.
    private let inFlight = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)
    /// When the client last sent a frame (a `Moment`'s nanoseconds), for the `SocketSweeper`.
    private let received = Atomic<Int64>(SystemClock().now().nanoseconds)
    /// The channel's WebSocket frame encoder, found on first use (on the channel's loop).
    private let encoder: NIOLoopBoundBox<ChannelHandlerContext?>
    /// Told when the broadcaster closes a topic of this socket's (the session forgets it).
    private let topicClosedHandler = Mutex<(@Sendable (String) -> Void)?>(nil)

    init(codec: PhoenixCodec, channel: any Channel, capacity: Int) {
        self.codec = codec
        self.channel = channel
        self.capacity = capacity
        coalescer = WriteCoalescer.of(channel.eventLoop)
        encoder = .makeEmptyBox(valueType: ChannelHandlerContext.self, eventLoop: channel.eventLoop)
    }

    /// Where pre-encoded frames enter the pipeline: just past the frame encoder (on the loop).
    var encoderContext: ChannelHandlerContext? {
        if let context = encoder.value { return context }
        let context = try? channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        encoder.value = context
        return context
    }

    /// The user each channel topic was joined as (removal from a channel closes that user's topics).
    private let joinedAs = Mutex<[String: String]>([:])

    func joined(_ topic: String, as user: String?) { joinedAs.withLock { $0[topic] = user } }

    func user(on topic: String) -> String? { joinedAs.withLock { $0[topic] } }

    func whenTopicClosed(_ handler: @escaping @Sendable (String) -> Void) { topicClosedHandler.withLock { $0 = handler } }

    func topicClosed(_ topic: String) { topicClosedHandler.withLock { $0 }?(topic) }

    /// The client sent a frame.
    func touch() { received.store(SystemClock().now().nanoseconds, ordering: .relaxed) }
    var lastReceived: Moment { Moment(nanoseconds: received.load(ordering: .relaxed)) }

    func deliver(_ message: ParleyCore.WebSocketMessage) -> Bool {
        guard !closed.load(ordering: .relaxed) else { return false }
        guard inFlight.add(1, ordering: .relaxed).newValue <= capacity else {
            inFlight.subtract(1, ordering: .relaxed)
            disconnect(code: .policyViolation, reason: "client too slow")
            return false
        }
        coalescer.enqueue(message, to: self)
        return true
    }

    /// `count` frames left the outbox for the socket (or failed with it).
    func written(_ count: Int) { inFlight.subtract(count, ordering: .relaxed) }

    /// Waits while more than half the capacity is in flight (a catch-up must not overflow).
    func deliverWhenReady(_ message: ParleyCore.WebSocketMessage) async -> Bool {
        while inFlight.load(ordering: .relaxed) > capacity / 2 {
            if closed.load(ordering: .relaxed) || Task.isCancelled { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return deliver(message)
    }

    /// Queues a frame of this socket's own (a reply or a push), encoded for its serializer.
    @discardableResult
    func send(_ frame: PhoenixFrame) -> Bool { deliver(codec.encode(frame)) }

    /// The socket closed: deliveries stop.
    func close() { closed.store(true, ordering: .relaxed) }

    /// Closes the connection from our side with a WebSocket close frame (or without, a
    /// second later, when the frame cannot get out).
    func disconnect(code: WebSocketErrorCode, reason: String) {
        close()
        let channel = channel
        channel.eventLoop.execute {
            var data = channel.allocator.buffer(capacity: 2 + reason.utf8.count)
            data.write(webSocketErrorCode: code)
            data.writeString(reason)
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))
                .whenComplete { _ in channel.close(promise: nil) }
            // A client that does not read never lets the close frame out: close anyway.
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
    }
}

/// Frames for the sockets of one event loop, written in one pass on that loop: a publish to
/// thousands of sockets costs one hop per loop rather than one per socket, one frame buffer
/// per message rather than one per socket, and frames that pile up for a socket go out with
/// one flush (one syscall) — the busier the node, the cheaper each frame.
final class WriteCoalescer: Sendable {
    private let eventLoop: any EventLoop
    private let pending = NIOLockedValueBox<(frames: [(ParleyCore.WebSocketMessage, SocketOutbox)], scheduled: Bool)>(([], false))

    private init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    private static let all = NIOLockedValueBox<[ObjectIdentifier: WriteCoalescer]>([:])

    /// The coalescer of `eventLoop` (one per loop, for the life of the process).
    static func of(_ eventLoop: any EventLoop) -> WriteCoalescer {
        all.withLockedValue { all in
            if let coalescer = all[ObjectIdentifier(eventLoop)] { return coalescer }
            let coalescer = WriteCoalescer(eventLoop: eventLoop)
            all[ObjectIdentifier(eventLoop)] = coalescer
            return coalescer
        }
    }

    func enqueue(_ message: ParleyCore.WebSocketMessage, to outbox: SocketOutbox) {
        let schedule = pending.withLockedValue { pending in
            pending.frames.append((message, outbox))
            defer { pending.scheduled = true }
            return !pending.scheduled
        }
        if schedule { eventLoop.execute { self.writeAll() } }
    }

    private func writeAll() {
        let frames = pending.withLockedValue { pending in
            defer { pending = ([], false) }
            return pending.frames
        }
        var order: [ObjectIdentifier] = []
        var perSocket: [ObjectIdentifier: (outbox: SocketOutbox, frames: [Encoded])] = [:]
        var last: (message: ParleyCore.WebSocketMessage, encoded: Encoded)?
        for (message, outbox) in frames {
            // A publish hands every socket the same message: encoded once for all of them.
            let encoded = last.flatMap { $0.message == message ? $0.encoded : nil } ?? Encoded(message)
            last = (message, encoded)
            let key = ObjectIdentifier(outbox)
            if perSocket[key] == nil {
                order.append(key)
                perSocket[key] = (outbox, [])
            }
            perSocket[key]?.frames.append(encoded)
        }
        for key in order {
            guard let (outbox, frames) = perSocket[key], let final = frames.last else { continue }
            // Writes complete in order: when the last is out, all are.
            let written = eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { _ in outbox.written(frames.count) }
            if let encoder = outbox.encoderContext {
                // The frame's bytes, shared by every socket, go in past the encoder.
                for frame in frames.dropLast() { encoder.write(NIOAny(frame.bytes), promise: nil) }
                encoder.writeAndFlush(NIOAny(final.bytes), promise: written)
            } else {
                for frame in frames.dropLast() { outbox.channel.write(frame.frame, promise: nil) }
                outbox.channel.writeAndFlush(final.frame, promise: written)
            }
        }
    }

    /// A message as a frame and as the frame's bytes on the wire (a server's frames are not
    /// masked: header, then payload).
    private struct Encoded {
        let frame: WebSocketFrame
        let bytes: ByteBuffer

        init(_ message: ParleyCore.WebSocketMessage) {
            frame = WriteCoalescer.frame(message)
            let length = frame.data.readableBytes
            var bytes = ByteBuffer()
            bytes.reserveCapacity(length + 10)
            bytes.writeInteger(UInt8(frame.opcode == .text ? 0x81 : 0x82))  // FIN and the opcode
            switch length {
            case ..<126: bytes.writeInteger(UInt8(length))
            case ..<65536:
                bytes.writeInteger(UInt8(126))
                bytes.writeInteger(UInt16(length))
            default:
                bytes.writeInteger(UInt8(127))
                bytes.writeInteger(UInt64(length))
            }
            var payload = frame.data
            bytes.writeBuffer(&payload)
            self.bytes = bytes
        }
    }

    fileprivate static func frame(_ message: ParleyCore.WebSocketMessage) -> WebSocketFrame {
        switch message {
        case .text(let text): WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text))
        case .binary(let bytes): WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: bytes))
        }
    }
}
