import ParleyCore

/// Where accepted messages go to be persisted (the `MessageBuffer`).
public protocol MessageSink: Sendable {
    func enqueue(_ message: MessageView) async
}

/// The one publish path for server events (the `Broadcaster`). Synchronous on purpose: an
/// actor publishes in the same step as it changes its state, so a subscriber attaching in
/// another step sees each event exactly once.
public protocol EventPublisher: Sendable {
    func publish(_ event: ServerEvent, topic: String)
}

/// Why a channel refused a request; `reason` is the wire code of DESIGN §6.
public enum ChannelError: Error, Sendable, Equatable, CustomStringConvertible {
    case notAMember
    /// This node does not hold the channel's lease (it moved, or the lease was lost).
    case notOwner
    /// A backend did not answer: nothing was acknowledged.
    case unavailable(String)
    case notFound(String)
    case forbidden(String)

    public var reason: String {
        switch self {
        case .notAMember: return "not_a_member"
        case .notOwner, .unavailable: return "unavailable"
        case .notFound: return "not_found"
        case .forbidden: return "forbidden"
        }
    }

    public var description: String {
        switch self {
        case .notAMember: return "not a member of this channel"
        case .notOwner: return "this node does not own the channel"
        case .unavailable(let why): return "unavailable: \(why)"
        case .notFound(let what): return "\(what) not found"
        case .forbidden(let why): return why
        }
    }
}
