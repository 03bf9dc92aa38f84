import Logging
import NIOWebSocket
import ParleyCore
import Synchronization

/// Whether this node drains: set once, by the first SIGTERM.
public final class DrainState: Sendable {
    private let draining = Atomic<Bool>(false)

    public init() {}

    public var isDraining: Bool { draining.load(ordering: .acquiring) }

    /// Marks the node draining; false if it already was.
    func begin() -> Bool { draining.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged }
}

extension Node {
    /// What a drain did, for the log.
    public struct DrainReport: Sendable, CustomStringConvertible {
        public var channelsHandedOff = 0
        public var handoffMilliseconds: Int64 = 0
        public var flushed = true
        public var socketsClosed = 0
        public var totalMilliseconds: Int64 = 0

        public var description: String {
            "\(channelsHandedOff) channels handed off in \(handoffMilliseconds) ms, "
                + (flushed ? "the buffer flushed" : "the buffer NOT flushed (its messages stay in the log for the next owners)")
                + ", \(socketsClosed) sockets closed; \(totalMilliseconds) ms in all"
        }
    }

    /// The close code a draining node closes sockets with: 1012, "service restart" (RFC 6455's
    /// registry): every Phoenix client reconnects on anything but 1000, to another node
    /// through the load balancer.
    static let drainCloseCode = WebSocketErrorCode.unknown(1012)
    static let drainCloseReason = "node draining; reconnect"

    /// Takes this node out of service without losing anything or failing a request (SIGTERM):
    ///
    /// 1. `/readyz` fails at once and new WebSocket upgrades get 503, so the load balancer
    ///    stops sending clients here (HAProxy: within two checks);
    /// 2. the buffer writes what it holds, under this node's fences; then the heartbeat says
    ///    `draining`: every ring drops this node, and every channel it owns is handed off
    ///    (stop accepting, finish appends, release, `take` notice to the new owner, which
    ///    recovers the log's tail). Writes meanwhile wait in the routers and go to the new
    ///    owners. Presence needs no handoff: it lives in Redis per socket;
    /// 3. the buffer writes what arrived meanwhile;
    /// 4. the sockets close in jittered batches over `window` with 1012, so their clients
    ///    reconnect elsewhere spread out rather than all at once; their presence leaves.
    ///
    /// The caller then stops the services (heartbeat removed last but one, the buffer last).
    public func drain(window: Duration) async -> DrainReport {
        var report = DrainReport()
        guard draining.begin() else { return report }
        let started = ContinuousClock.now
        logger.notice("draining: /readyz fails from now on", metadata: ["window_ms": "\(window.milliseconds)"])
        // What is pending goes to PostgreSQL under this node's fences first (rows written after
        // the handoff are refused and left to the new owners' recovery).
        _ = await buffer.flush(within: .seconds(5))
        let handoffsBefore = channels.ownership.stats().handoffs
        await membership.startDraining()
        await channels.drain()
        report.channelsHandedOff = channels.ownership.stats().handoffs - handoffsBefore
        report.handoffMilliseconds = (ContinuousClock.now - started).milliseconds
        logger.notice("draining: channels handed off", metadata: [
            "channels": "\(report.channelsHandedOff)", "ms": "\(report.handoffMilliseconds)"])
        report.flushed = await buffer.flush(within: .seconds(5))
        report.socketsClosed = await sockets.closeAll(over: window, code: Self.drainCloseCode, reason: Self.drainCloseReason)
        report.totalMilliseconds = (ContinuousClock.now - started).milliseconds
        logger.notice("drained", metadata: ["report": "\(report)"])
        return report
    }
}
