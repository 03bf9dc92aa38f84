/// What went wrong talking to PostgreSQL. Each case says in one line what failed.
public enum PostgresError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration (URL) is not usable.
    case invalidConfiguration(String)
    /// A connection could not be made or authenticated.
    case connectionFailed(endpoint: String, reason: String)
    /// The connection broke during a statement: it may or may not have run.
    case connectionLost(endpoint: String, reason: String)
    /// PostgreSQL is known to be unreachable and the next attempt is not due yet: failing fast.
    case unavailable(endpoint: String, reason: String)
    /// The server refused the statement; `sqlState` is the five-character SQLSTATE code.
    case server(sqlState: String, message: String, detail: String?, constraint: String?)
    /// A value could not be decoded into the Swift type asked for.
    case decoding(column: String, reason: String)
    /// The client was shut down.
    case shutdown

    public var description: String {
        switch self {
        case .invalidConfiguration(let why): return "postgres: invalid configuration: \(why)"
        case .connectionFailed(let endpoint, let reason): return "postgres: cannot connect to \(endpoint): \(reason)"
        case .connectionLost(let endpoint, let reason): return "postgres: connection to \(endpoint) lost: \(reason)"
        case .unavailable(let endpoint, let reason): return "postgres: \(endpoint) unavailable (\(reason)); retrying in the background"
        case .server(let state, let message, let detail, _):
            return "postgres: \(message) [\(state)]" + (detail.map { " (\($0))" } ?? "")
        case .decoding(let column, let reason): return "postgres: cannot decode column \(column): \(reason)"
        case .shutdown: return "postgres: client is shut down"
        }
    }

    /// The SQLSTATE of a server error.
    public var sqlState: String? {
        if case .server(let state, _, _, _) = self { return state }
        return nil
    }

    /// `23505`: a row with the same unique key exists.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// True when the failure is about reaching PostgreSQL rather than about the statement.
    public var isConnectionError: Bool {
        switch self {
        case .connectionFailed, .connectionLost, .unavailable, .shutdown: return true
        default: return false
        }
    }
}
