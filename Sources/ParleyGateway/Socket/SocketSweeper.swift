import NIOWebSocket
import ParleyCore
import ServiceLifecycle
import Synchronization

/// The node's open sockets, and the one loop that closes those silent for `timeout` (no
/// frame, not even a heartbeat): a client that vanished without closing — a laptop lid, a
/// dropped network — would otherwise stay connected and present forever. One loop for the
/// node rather than a timer task per socket keeps an idle connection cheap.
public final class SocketSweeper: Service {
    private let sockets = Mutex<[ObjectIdentifier: SocketOutbox]>([:])
    private let timeout: Duration
    private let onTimeout: @Sendable () -> Void

    init(timeout: Duration, onTimeout: @escaping @Sendable () -> Void) {
        self.timeout = timeout
        self.onTimeout = onTimeout
    }

    func add(_ outbox: SocketOutbox) { sockets.withLock { $0[ObjectIdentifier(outbox)] = outbox } }
    func remove(_ outbox: SocketOutbox) { _ = sockets.withLock { $0.removeValue(forKey: ObjectIdentifier(outbox)) } }

    public var count: Int { sockets.withLock { $0.count } }

    /// Closes every open socket over `window`, a batch every 100 ms or so, each batch at a
    /// random moment of its slot: a drained node's clients reconnect to the others spread
    /// out, not in one burst. Sockets opened meanwhile (an upgrade already under way) close
    /// at the end. Returns how many closed.
    func closeAll(over window: Duration, code: WebSocketErrorCode, reason: String) async -> Int {
        let all = sockets.withLock { Array($0.values) }.shuffled()
        var closed = 0
        if !all.isEmpty {
            let slots = max(1, min(all.count, Int(window / .milliseconds(100))))
            let slot = window / slots
            let start = ContinuousClock.now
            for index in 0..<slots {
                try? await Task.sleep(until: start + slot * index + slot * Double.random(in: 0..<1))
                for outbox in stride(from: index, to: all.count, by: slots).map({ all[$0] }) {
                    remove(outbox)
                    outbox.disconnect(code: code, reason: reason)
                    closed += 1
                }
            }
        }
        let late = sockets.withLock { sockets in
            defer { sockets.removeAll() }
            return Array(sockets.values)
        }
        for outbox in late { outbox.disconnect(code: code, reason: reason) }
        return closed + late.count
    }

    public func run() async throws {
        let interval = min(timeout / 4, .seconds(5))
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            let now = SystemClock().now()
            let silent = sockets.withLock { $0.values.filter { now - $0.lastReceived > timeout } }
            for outbox in silent {
                remove(outbox)
                outbox.disconnect(code: .goingAway, reason: "timeout")
                onTimeout()
            }
        }
    }
}
