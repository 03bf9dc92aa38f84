import ParleyCore

/// Every Redis key and pub/sub channel name, built in one place (DESIGN §4). Entity ids are
/// wrapped in `{…}` so that one entity's keys share a Redis Cluster hash slot.
public struct RedisKeyspace: Sendable, Hashable {
    public let prefix: String

    public init(prefix: String = "parley") { self.prefix = prefix }

    public func node(_ name: String) -> String { "\(prefix):node:\(name)" }
    public var nodes: String { "\(prefix):nodes" }
    public func lease(_ key: EntityKey) -> String { "\(prefix):lease:\(key.kind.rawValue):{\(key.id)}" }
    public func fence(_ key: EntityKey) -> String { "\(prefix):fence:\(key.kind.rawValue):{\(key.id)}" }
    public func log(channel: String) -> String { "\(logHead)\(channel)}" }
    /// What every channel log's key starts with (before the channel id and the closing `}`).
    public var logHead: String { "\(prefix):log:channel:{" }
    public func dedupe(channel: String) -> String { "\(prefix):dedupe:channel:{\(channel)}" }
    /// The `client_msg_id`s of entries trimmed lately, and of those trimmed before them.
    public func trimmedDedupe(channel: String) -> String { "\(prefix):dedupe-trimmed:channel:{\(channel)}" }
    public func olderTrimmedDedupe(channel: String) -> String { "\(prefix):dedupe-trimmed-old:channel:{\(channel)}" }
    public func presence(workspace: String) -> String { "\(prefix):presence:workspace:{\(workspace)}" }
    /// The workspaces a node incarnation wrote presence to (what to reap when it dies).
    public func presenceNodeWorkspaces(node: String) -> String { "\(prefix):presence-node:{\(node)}" }
    public func topic(_ topic: String) -> String { "\(prefix):topic:\(topic)" }
    public func inbox(node: String) -> String { "\(prefix):inbox:\(node)" }
}
