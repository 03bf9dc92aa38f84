import Foundation
import Logging
import ParleyCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the subscriber connection delivers.
public enum RedisSubscriberEvent: Sendable, Hashable {
    /// A message published on a subscribed channel.
    case message(channel: String, payload: [UInt8])
    /// The connection came back after a loss and every wanted channel is subscribed again.
    /// Messages published in between were not delivered: recover them by other means.
    case reconnected
    /// The connection was lost; it is being re-established with backoff.
    case disconnected(reason: String)
}

/// The pub/sub connection: one hiredis connection on a thread of its own.
///
/// Subscriptions can be added and removed at any time; the wanted set survives a lost
/// connection and is subscribed again on reconnect, after which `.reconnected` is delivered.
/// The thread waits in `poll` on the socket and on a wake pipe (for new subscriptions and
/// shutdown), and pings Redis when idle so a dead server is noticed within two intervals.
public final class RedisSubscriber: Sendable {
    public let events: AsyncStream<RedisSubscriberEvent>
    private let continuation: AsyncStream<RedisSubscriberEvent>.Continuation
    private let configuration: RedisConfiguration
    private let pingInterval: Duration
    private let logger: Logger
    private let state: Mutex<State>
    private let wakePipe: (read: Int32, write: Int32)

    private struct State: ~Copyable {
        /// Channels the owner wants.
        var wanted: Set<String> = []
        /// Channels a SUBSCRIBE was sent for on the current connection.
        var requested: Set<String> = []
        /// Channels whose SUBSCRIBE Redis confirmed on the current connection.
        var confirmed: Set<String> = []
        var waiters: [String: [CheckedContinuation<Void, any Error>]] = [:]
        var isConnected = false
        var lastFailure = "not connected yet"
        var isShutdown = false
    }

    /// Events dropped because the consumer fell `bufferLimit` behind (pub/sub is at most once;
    /// clients recover by `seq`).
    public var droppedEvents: Int { dropped.load(ordering: .relaxed) }
    private let dropped = Atomic<Int>(0)

    public init(_ configuration: RedisConfiguration, pingInterval: Duration = .seconds(1), bufferLimit: Int = 10_000,
                logger: Logger = Logger(label: "parley.redis.subscriber")) {
        (events, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(bufferLimit))
        self.configuration = configuration
        self.pingInterval = pingInterval
        self.logger = logger
        self.state = Mutex(State())
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0, "cannot create the subscriber's wake pipe")
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        wakePipe = (fds[0], fds[1])
        let thread = Thread { [self] in self.runLoop() }
        thread.name = "parley-redis-subscriber"
        thread.start()
    }

    deinit {
        close(wakePipe.read)
        close(wakePipe.write)
    }

    /// Subscribes to `channels` and returns once Redis has confirmed them. While Redis is
    /// unreachable this throws `.unavailable` at once, but the channels stay wanted and are
    /// subscribed when the connection returns.
    public func subscribe(_ channels: [String]) async throws {
        for channel in channels {
            try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = state.withLock { state in
                    if state.isShutdown { return .failure(RedisError.shutdown) }
                    state.wanted.insert(channel)
                    if state.confirmed.contains(channel) { return .success(()) }
                    guard state.isConnected else {
                        return .failure(RedisError.unavailable(endpoint: configuration.endpoint, reason: state.lastFailure))
                    }
                    state.waiters[channel, default: []].append(waiter)
                    return nil
                }
                if let immediate { waiter.resume(with: immediate) } else { wake() }
            }
        }
    }

    /// Stops wanting `channels`; Redis is told without waiting for its answer.
    public func unsubscribe(_ channels: [String]) {
        state.withLock { state in
            for channel in channels { state.wanted.remove(channel) }
        }
        wake()
    }

    /// The channels currently wanted.
    public var subscriptions: Set<String> { state.withLock { $0.wanted } }

    /// Stops the thread, closes the connection and finishes `events`.
    public func shutdown() {
        let waiters = state.withLock { state in
            state.isShutdown = true
            defer { state.waiters.removeAll() }
            return state.waiters.values.flatMap { $0 }
        }
        for waiter in waiters { waiter.resume(throwing: RedisError.shutdown) }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
    }

    // MARK: - The subscriber thread

    private var isShutdown: Bool { state.withLock { $0.isShutdown } }

    private func runLoop() {
        var backoff = BackoffState(policy: configuration.reconnectBackoff)
        var hasConnectedBefore = false
        let clock = SystemClock()
        while !isShutdown {
            do {
                let connection = try RedisConnection.connect(configuration, readTimeout: configuration.commandTimeout)
                backoff.recordSuccess()
                state.withLock { $0.isConnected = true }
                try serve(connection, announceReconnect: hasConnectedBefore)
                hasConnectedBefore = true
            } catch {
                let reason = (error as? RedisError)?.description ?? "\(error)"
                let wasConnected = connectionLost(reason: reason)
                if wasConnected {
                    hasConnectedBefore = true
                    continuation.yield(.disconnected(reason: reason))
                    logger.warning("redis subscriber disconnected", metadata: ["reason": "\(reason)"])
                }
                let delay = backoff.recordFailure(at: clock.now())
                waitForWake(timeout: delay)
            }
        }
        _ = connectionLost(reason: "shut down")
        continuation.finish()
    }

    /// Marks the connection gone and fails the confirmations still awaited; returns whether
    /// it had been connected.
    private func connectionLost(reason: String) -> Bool {
        let (wasConnected, waiters) = state.withLock { state in
            let wasConnected = state.isConnected
            state.isConnected = false
            state.requested = []
            state.confirmed = []
            state.lastFailure = reason
            defer { state.waiters.removeAll() }
            return (wasConnected, state.waiters.values.flatMap { $0 })
        }
        let error = RedisError.unavailable(endpoint: configuration.endpoint, reason: reason)
        for waiter in waiters { waiter.resume(throwing: error) }
        return wasConnected
    }

    /// Serves one connection until it fails (throws) or the subscriber shuts down (returns).
    private func serve(_ connection: RedisConnection, announceReconnect: Bool) throws {
        var pendingAnnouncement = announceReconnect
        var lastHeard = ContinuousClock.now
        var pingOutstanding = false
        while !isShutdown {
            let sentSubscriptions = try syncSubscriptions(connection)
            if pendingAnnouncement && !sentSubscriptions && state.withLock({ $0.requested == $0.confirmed }) {
                pendingAnnouncement = false
                logger.info("redis subscriber reconnected")
                continuation.yield(.reconnected)
            }
            let readable = poll(connection.fileDescriptor, timeout: pingInterval)
            if readable.wake { drainWakePipe() }
            if readable.socket {
                try connection.readAvailable()
                while let reply = try connection.nextBufferedReply() {
                    lastHeard = .now
                    pingOutstanding = false
                    handle(reply)
                }
            }
            let silence = ContinuousClock.now - lastHeard
            if silence >= pingInterval * 2 && pingOutstanding {
                throw RedisError.io(endpoint: configuration.endpoint, reason: "no answer to PING for \(silence)")
            }
            if silence >= pingInterval && !pingOutstanding {
                try connection.append(RedisCommand("PING"))
                try connection.flush()
                pingOutstanding = true
            }
        }
    }

    /// Sends SUBSCRIBE / UNSUBSCRIBE for the difference between wanted and requested;
    /// returns whether it sent anything.
    private func syncSubscriptions(_ connection: RedisConnection) throws -> Bool {
        let (add, remove) = state.withLock { state in
            let add = state.wanted.subtracting(state.requested)
            let remove = state.requested.subtracting(state.wanted)
            state.requested = state.wanted
            state.confirmed.subtract(remove)
            return (add, remove)
        }
        if !add.isEmpty { try connection.append(RedisCommand("SUBSCRIBE", add.sorted())) }
        if !remove.isEmpty { try connection.append(RedisCommand("UNSUBSCRIBE", remove.sorted())) }
        if add.isEmpty && remove.isEmpty { return false }
        try connection.flush()
        return true
    }

    private func handle(_ reply: RedisValue) {
        guard let parts = reply.array, let kind = parts.first?.string else { return }
        switch kind {
        case "message" where parts.count == 3:
            if let channel = parts[1].string, let payload = parts[2].bytes {
                if case .dropped = continuation.yield(.message(channel: channel, payload: payload)) {
                    dropped.add(1, ordering: .relaxed)
                }
            }
        case "subscribe" where parts.count == 3:
            guard let channel = parts[1].string else { return }
            let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
                guard state.requested.contains(channel) else { return [] }
                state.confirmed.insert(channel)
                return state.waiters.removeValue(forKey: channel) ?? []
            }
            for waiter in waiters { waiter.resume() }
        default:
            break
        }
    }

    private func poll(_ socket: Int32, timeout: Duration) -> (socket: Bool, wake: Bool) {
        var fds = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
        let result = Glibc.poll(&fds, 2, Int32(clamping: timeout.milliseconds))
        guard result > 0 else { return (false, false) }
        let socketReady = fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0
        return (socketReady, fds[1].revents & Int16(POLLIN) != 0)
    }

    private func waitForWake(timeout: Duration) {
        var fds = [pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
        if Glibc.poll(&fds, 1, Int32(clamping: timeout.milliseconds)) > 0 { drainWakePipe() }
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakePipe.read, &buffer, buffer.count) > 0 {}
    }
}
