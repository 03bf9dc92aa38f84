import Foundation
import ParleyCore

/// Where and how to reach Redis: parsed from `redis://[:password@]host[:port][/db]`.
public struct RedisConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    /// Command connections in the pool.
    public var poolSize: Int
    public var connectTimeout: Duration
    /// Longest wait for one reply before the connection is considered broken.
    public var commandTimeout: Duration
    /// Reconnect pacing once Redis has gone away.
    public var reconnectBackoff: Backoff

    public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil,
                database: Int = 0, poolSize: Int = 4, connectTimeout: Duration = .seconds(2),
                commandTimeout: Duration = .seconds(5),
                reconnectBackoff: Backoff = Backoff(initial: .milliseconds(50), maximum: .seconds(2))) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.poolSize = poolSize
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.reconnectBackoff = reconnectBackoff
    }

    public init(url: String, poolSize: Int = 4) throws {
        guard let components = URLComponents(string: url), components.scheme == "redis" else {
            throw RedisError.invalidConfiguration("'\(url)' is not a redis:// URL")
        }
        guard let host = components.host, !host.isEmpty else {
            throw RedisError.invalidConfiguration("'\(url)' names no host")
        }
        var database = 0
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else {
                throw RedisError.invalidConfiguration("'\(path)' in '\(url)' is not a database number")
            }
            database = number
        }
        let user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        self.init(host: host, port: components.port ?? 6379, username: user,
                  password: components.password?.removingPercentEncoding, database: database, poolSize: poolSize)
    }

    /// `host:port`, for error messages (never the password).
    public var endpoint: String { "\(host):\(port)" }
}
