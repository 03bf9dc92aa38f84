/// What went wrong talking to Redis. Each case says in one line what failed.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration (URL) is not usable.
    case invalidConfiguration(String)
    /// A connection could not be made or authenticated.
    case connectionFailed(endpoint: String, reason: String)
    /// A connection broke during a command: the command may or may not have run.
    case io(endpoint: String, reason: String)
    /// Redis is known to be unreachable and the next attempt is not due yet: failing fast.
    case unavailable(endpoint: String, reason: String)
    /// Redis answered with an error reply.
    case reply(String)
    /// The reply did not have the expected shape.
    case unexpectedReply(String)
    /// The client was shut down.
    case shutdown

    public var description: String {
        switch self {
        case .invalidConfiguration(let why): return "redis: invalid configuration: \(why)"
        case .connectionFailed(let endpoint, let reason): return "redis: cannot connect to \(endpoint): \(reason)"
        case .io(let endpoint, let reason): return "redis: connection to \(endpoint) lost: \(reason)"
        case .unavailable(let endpoint, let reason): return "redis: \(endpoint) unavailable (\(reason)); retrying in the background"
        case .reply(let message): return "redis: \(message)"
        case .unexpectedReply(let what): return "redis: unexpected reply: \(what)"
        case .shutdown: return "redis: client is shut down"
        }
    }

    /// True when the failure is about reaching Redis rather than about the command.
    public var isConnectionError: Bool {
        switch self {
        case .connectionFailed, .io, .unavailable, .shutdown: return true
        default: return false
        }
    }
}
