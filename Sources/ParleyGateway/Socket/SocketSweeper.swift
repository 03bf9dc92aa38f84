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
