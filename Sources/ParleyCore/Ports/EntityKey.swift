/// What a lease is held on: one channel or one workspace (`channel:C`, `workspace:W`).
public struct EntityKey: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable { case channel, workspace }
    public let kind: Kind
    public let id: String

    public init(_ kind: Kind, _ id: String) {
        self.kind = kind
        self.id = id
    }

    public static func channel(_ id: String) -> EntityKey { EntityKey(.channel, id) }
    public static func workspace(_ id: String) -> EntityKey { EntityKey(.workspace, id) }

    /// The ring key and log name: `channel:C`.
    public var description: String { "\(kind.rawValue):\(id)" }
}
