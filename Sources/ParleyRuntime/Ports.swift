import ParleyCore

/// Where accepted messages go to be persisted (the `MessageBuffer`).
public protocol MessageSink: Sendable {
    /// Queues an accepted message for the store, with the fence of the owner that accepted it.
    func enqueue(_ message: MessageView, fence: Int64) async
    /// Everything of `channel` up to `seq` is in the store (a new owner recovered the log, or
    /// an edit stored the messages before it): the log may be trimmed through there.
    func persisted(channel: String, through seq: Int64) async
    /// Whether a new message may be accepted: false while the backlog is at its limit.
    var hasRoom: Bool { get }
    /// The channel's server stopped: stop tracking what of it is stored.
    func forget(channel: String) async
}

/// The one publish path for server events (the `Broadcaster`). Synchronous on purpose: an
/// actor publishes in the same step as it changes its state, so a subscriber attaching in
/// another step sees each event exactly once.
public protocol EventPublisher: Sendable {
    func publish(_ event: ServerEvent, topic: String)
    /// Publishes `event` (`phx_error`) on `topic` and ends every subscription to it: its
    /// channel stopped, and its subscribers receive nothing more until they join again.
    func close(_ topic: String, with event: ServerEvent)
}

extension EventPublisher {
    public func close(_ topic: String, with event: ServerEvent) { publish(event, topic: topic) }
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
    /// Messages `range` are in neither the log nor the store: a catch-up cannot be completed.
    case gap(ClosedRange<Int64>)

    public var reason: String {
        switch self {
        case .notAMember: return "not_a_member"
        case .notOwner, .unavailable: return "unavailable"
        case .notFound: return "not_found"
        case .forbidden: return "forbidden"
        case .gap: return "gap"
        }
    }

    public var description: String {
        switch self {
        case .notAMember: return "not a member of this channel"
        case .notOwner: return "this node does not own the channel"
        case .unavailable(let why): return "unavailable: \(why)"
        case .notFound(let what): return "\(what) not found"
        case .forbidden(let why): return why
        case .gap(let range): return "messages \(range.lowerBound)...\(range.upperBound) cannot be read"
        }
    }
}
