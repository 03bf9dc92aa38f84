import Foundation
import HummingbirdWSClient
import Logging
import ParleyCore
import Synchronization
import Histogram

/// Monotonic nanoseconds (CLOCK_MONOTONIC), the clock every latency here is read from.
@inline(__always) func nowNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// One WebSocket connection on NIO's event loops (no thread per connection): text frames
/// written through `send`, each text frame received handed to `onText` on the connection's
/// task. Used for Parley's Phoenix sockets and nchan's raw subscribers alike.
final class BenchSocket: Sendable {
    /// Whether the upgrade finished (or failed), who waits for it, and the failure.
    private final class Opening: Sendable {
        private let state = Mutex<(done: Bool, failure: String?, waiters: [CheckedContinuation<Void, Never>])>((false, nil, []))

        func finish(failure: String? = nil) {
            let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                if state.failure == nil { state.failure = failure }
                guard !state.done else { return [] }
                state.done = true
                defer { state.waiters = [] }
                return state.waiters
            }
            waiters.forEach { $0.resume() }
        }

        func wait() async {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state in
                    if state.done { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        }

        var failure: String? { state.withLock { $0.failure } }
    }

    private let outbound: AsyncStream<String>.Continuation
    private let task: Task<Void, Never>
    private let opening = Opening()

    /// `onClose` runs once the connection has ended (or failed to open).
    init(url: String, onText: @escaping @Sendable (String) -> Void, onClose: @escaping @Sendable () -> Void = {}) {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        outbound = continuation
        let opening = opening
        task = Task {
            do {
                try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20),
                                                  logger: Logger(label: "bench")) { inbound, writer, _ in
                    opening.finish()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await message in inbound.messages(maxSize: 1 << 20) {
                                if case .text(let text) = message { onText(text) }
                            }
                        }
                        group.addTask {
                            for await text in stream { try await writer.write(.text(text)) }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
                opening.finish(failure: "closed")
            } catch {
                opening.finish(failure: "\(error)")
            }
            onClose()
        }
    }

    /// Waits until the upgrade finished (or the connection failed: see `error`).
    func waitOpen() async { await opening.wait() }

    var error: String? { opening.failure }

    func send(_ text: String) { outbound.yield(text) }

    func close() {
        outbound.finish()
        task.cancel()
    }

    /// Waits until the connection's task has ended.
    func closed() async { await task.value }
}

/// A Phoenix Channels client (serializer 2.0.0, as phoenix.js) on a `BenchSocket`: requests
/// with refs answered by `phx_reply`, pushes handed to `onPush(topic, event, payload)`.
final class PhoenixBenchClient: Sendable {
    private let socket: BenchSocket
    private let nextRef = Atomic<Int>(0)
    private final class Pending: Sendable {
        typealias Waiter = CheckedContinuation<(status: String, response: JSONValue), Never>
        /// Requests waiting for replies; `closed` once the connection ended (no more wait).
        let state = Mutex<(waiting: [String: Waiter], closed: Bool)>(([:], false))

        /// Registers a request; false when the connection has already ended.
        func add(_ ref: String, _ waiter: Waiter) -> Bool {
            state.withLock { state in
                guard !state.closed else { return false }
                state.waiting[ref] = waiter
                return true
            }
        }

        func remove(_ ref: String) -> Waiter? { state.withLock { $0.waiting.removeValue(forKey: ref) } }
    }

    private let pending = Pending()

    /// `onPush` gets each pushed frame's text unparsed (see `LatencyRecorder.record(carriedIn:)`);
    /// replies are parsed and answer their request.
    init(baseURL: String, token: String, onClose: @escaping @Sendable () -> Void = {},
         onPush: @escaping @Sendable (_ text: String) -> Void) {
        let pending = pending
        socket = BenchSocket(url: "\(baseURL)/socket/websocket?vsn=2.0.0&token=\(token)", onText: { text in
            guard text.contains("\"phx_reply\""), let frame = try? PhoenixCodec.v2.decode(text: text), frame.event == "phx_reply" else {
                onPush(text)
                return
            }
            if let ref = frame.ref, let waiter = pending.remove(ref) {
                let payload = frame.json
                waiter.resume(returning: (payload["status"]?.stringValue ?? "", payload["response"] ?? .null))
            }
        }, onClose: {
            // The connection ended: requests still waiting get no reply.
            Self.answerClosed(pending)
            onClose()
        })
    }

    private static func answerClosed(_ pending: Pending) {
        let waiters = pending.state.withLock { state in
            defer { state = ([:], true) }
            return Array(state.waiting.values)
        }
        for waiter in waiters { waiter.resume(returning: ("closed", .null)) }
    }

    func waitOpen() async { await socket.waitOpen() }
    var error: String? { socket.error }

    /// Sends a request and waits for its reply.
    func request(_ topic: String, _ event: String, _ payload: JSONValue, joinRef: String? = nil) async -> (status: String, response: JSONValue) {
        let ref = String(nextRef.add(1, ordering: .relaxed).newValue)
        let frame: JSONValue = [joinRef.map { .string($0) } ?? .null, .string(ref), .string(topic), .string(event), payload]
        return await withCheckedContinuation { continuation in
            // A socket already gone answers at once.
            guard pending.add(ref, continuation) else {
                continuation.resume(returning: ("closed", .null))
                return
            }
            socket.send(frame.jsonText)
        }
    }

    func join(_ topic: String, _ payload: JSONValue = [:]) async -> (status: String, response: JSONValue) {
        await request(topic, "phx_join", payload, joinRef: topic)
    }

    /// Ends the socket; requests still waiting are answered `closed`.
    func close() {
        socket.close()
        Self.answerClosed(pending)
    }

    func closed() async { await socket.closed() }
}

/// Latencies in nanoseconds from a send time carried in the message, counted, with the
/// time of the last one.
final class LatencyRecorder: Sendable {
    private struct State {
        var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000,
                                          numberOfSignificantValueDigits: .three)
        var last: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Records now − `sentAt`.
    func record(sentAt: UInt64) {
        let now = nowNanos()
        state.withLock {
            _ = $0.histogram.record(max(1_000, now &- sentAt))
            $0.last = max($0.last, now)
        }
    }

    /// Records the send time a frame carries as `t=<nanos>` (the first one in `text`), read
    /// without parsing the frame: the load generator shares the CPU with the server it
    /// measures, so both targets' frames are read this same cheap way.
    func record(carriedIn text: String) {
        var text = text
        let sentAt: UInt64? = text.withUTF8 { bytes in
            var index = 0
            while index + 2 < bytes.count {
                if bytes[index] == UInt8(ascii: "t") && bytes[index + 1] == UInt8(ascii: "=") {
                    var value: UInt64 = 0, digits = 0
                    var cursor = index + 2
                    while cursor < bytes.count, bytes[cursor] >= 48, bytes[cursor] <= 57 {
                        value = value &* 10 &+ UInt64(bytes[cursor] - 48)
                        cursor += 1
                        digits += 1
                    }
                    if digits > 0 { return value }
                }
                index += 1
            }
            return nil
        }
        if let sentAt { record(sentAt: sentAt) }
    }

    var histogram: Histogram<UInt64> { state.withLock { $0.histogram } }
    var count: Int { state.withLock { Int($0.histogram.totalCount) } }
    var lastAt: UInt64 { state.withLock { $0.last } }
}
