import DequeModule
import Synchronization

/// A connection a `ConnectionPool` can lend out.
public protocol PooledConnection: AnyObject, Sendable {
    /// True once the connection failed; the pool then discards it and presumes the server gone.
    var isBroken: Bool { get }
    /// A cheap non-blocking check made before an idle connection is lent again; false when the
    /// server has closed it meanwhile (for example after a restart).
    func isStillUsable() -> Bool
}

/// What happened to the pool's reach of its server, for logs and metrics.
public enum ConnectionPoolEvent: Sendable, Equatable {
    /// Connections that had worked broke (not reported for a server never reached: the
    /// caller's error says that).
    case lost(reason: String, retryIn: Duration)
    case restored
}

/// A bounded pool of connections to one server, shared by the Redis and PostgreSQL clients.
///
/// At most `size` connections exist. A caller gets an idle connection, or opens a new one
/// while under the bound, or waits for one to be returned. When a connection breaks, the
/// server is presumed gone: idle connections are dropped, waiters fail at once, and until the
/// backoff delay has passed new calls fail fast with the `unavailable` error instead of
/// queueing behind a dead server. The first call after the delay reconnects.
public final class ConnectionPool<Connection: PooledConnection>: Sendable {
    public let size: Int
    /// Callers that may wait for a connection; one more fails at once with the `unavailable`
    /// error rather than queueing without bound.
    public let maximumWaiters: Int
    private let clock: any ParleyClock
    private let connect: @Sendable () async throws -> Connection
    private let unavailable: @Sendable (_ reason: String) -> any Error
    private let shutdownError: any Error
    private let onEvent: @Sendable (ConnectionPoolEvent) -> Void
    private let state: Mutex<State>

    private enum Grant {
        case connection(Connection)
        /// A slot was reserved for the caller: it opens the connection itself.
        case connect
    }

    private struct State: ~Copyable {
        var idle: [Connection] = []
        /// Connections open or being opened, idle or lent out.
        var open = 0
        var waiters: Deque<CheckedContinuation<Grant, any Error>> = []
        var backoff: BackoffState
        var lastFailure = ""
        var isShutdown = false
        /// Whether a connection was ever made: a first failure is the caller's to report,
        /// a later one is a loss worth an event.
        var hasConnected = false
    }

    public init(size: Int, backoff: Backoff, maximumWaiters: Int = 4_096, clock: any ParleyClock = SystemClock(),
                connect: @escaping @Sendable () async throws -> Connection,
                unavailable: @escaping @Sendable (_ reason: String) -> any Error,
                shutdownError: any Error,
                onEvent: @escaping @Sendable (ConnectionPoolEvent) -> Void = { _ in }) {
        precondition(size > 0, "a pool needs at least one connection")
        self.size = size
        self.maximumWaiters = maximumWaiters
        self.clock = clock
        self.connect = connect
        self.unavailable = unavailable
        self.shutdownError = shutdownError
        self.onEvent = onEvent
        self.state = Mutex(State(backoff: BackoffState(policy: backoff)))
    }

    /// Callers waiting for a connection now.
    public var waiting: Int { state.withLock { $0.waiters.count } }

    /// Lends a connection to `body` and takes it back afterwards (discarding it if it broke).
    public func withConnection<R: Sendable>(_ body: (Connection) async throws -> R) async throws -> R {
        let connection = try await acquire()
        defer { release(connection) }
        return try await body(connection)
    }

    /// Connections currently open (idle or lent out).
    public var openCount: Int { state.withLock { $0.open } }

    /// Drops idle connections and fails waiting and later calls.
    public func shutdown() {
        let waiters = state.withLock { state in
            state.isShutdown = true
            state.open -= state.idle.count
            state.idle.removeAll()
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: shutdownError) }
    }

    private func acquire() async throws -> Connection {
        while true {
            let grant = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Grant, any Error>) in
                let immediate: Result<Grant, any Error>? = state.withLock { state in
                    if state.isShutdown { return .failure(shutdownError) }
                    if let connection = state.idle.popLast() { return .success(.connection(connection)) }
                    if state.open < size {
                        guard state.backoff.mayAttempt(at: clock.now()) else {
                            return .failure(unavailable(state.lastFailure))
                        }
                        state.open += 1
                        return .success(.connect)
                    }
                    guard state.waiters.count < maximumWaiters else {
                        return .failure(unavailable("\(maximumWaiters) callers already wait for a connection"))
                    }
                    state.waiters.append(continuation)
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
            switch grant {
            case .connection(let connection):
                if connection.isStillUsable() { return connection }
                // Closed while idle (a server restart): forget it and try again.
                state.withLock { $0.open -= 1 }
            case .connect:
                do {
                    let connection = try await connect()
                    let recovered = state.withLock { state in
                        defer { state.backoff.recordSuccess(); state.hasConnected = true }
                        return state.backoff.attempts > 0 && state.hasConnected
                    }
                    if recovered { onEvent(.restored) }
                    return connection
                } catch {
                    slotLost(reason: "\(error)")
                    throw error
                }
            }
        }
    }

    private func release(_ connection: Connection) {
        if connection.isBroken {
            slotLost(reason: "connection broken")
            return
        }
        let waiter = state.withLock { state -> CheckedContinuation<Grant, any Error>? in
            if state.isShutdown { state.open -= 1; return nil }
            if let waiter = state.waiters.popFirst() { return waiter }
            state.idle.append(connection)
            return nil
        }
        waiter?.resume(returning: .connection(connection))
    }

    private func slotLost(reason: String) {
        let (waiters, delay, firstFailure) = state.withLock { state in
            state.open -= 1 + state.idle.count
            state.idle.removeAll()
            state.lastFailure = reason
            let delay = state.backoff.recordFailure(at: clock.now())
            defer { state.waiters.removeAll() }
            return (state.waiters, delay, state.backoff.attempts == 1 && state.hasConnected)
        }
        if firstFailure { onEvent(.lost(reason: reason, retryIn: delay)) }
        let error = unavailable(reason)
        for waiter in waiters { waiter.resume(throwing: error) }
    }
}
