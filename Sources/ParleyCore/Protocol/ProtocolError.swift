/// Why a frame or payload from a client was refused. Every case has a stable `reason`, the
/// machine-readable code clients get in `{"status": "error", "response": {"reason": …}}`.
public enum ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The frame is not JSON.
    case malformedJSON(JSONParseError)
    /// The frame is JSON but not a frame: wrong arity or shape.
    case malformedFrame(String)
    /// A field of the frame or payload has the wrong JSON type.
    case wrongType(field: String, expected: String, found: String)
    /// A required payload field is absent.
    case missingField(String)
    /// A field's value is outside what is allowed.
    case invalidField(field: String, reason: String)
    /// The frame or a field is larger than allowed.
    case tooLarge(field: String, limit: Int, size: Int)
    /// The event is not one this topic accepts.
    case unknownEvent(topic: String, event: String)
    /// The topic is not one of `workspace:`, `channel:`, `user:`, `thread:`, `phoenix`.
    case unknownTopic(String)

    /// The stable code sent to clients (DESIGN §6).
    public var reason: String {
        switch self {
        case .tooLarge: return "too_large"
        case .unknownEvent: return "unknown_event"
        case .unknownTopic: return "unmatched_topic"
        default: return "invalid_payload"
        }
    }

    public var description: String {
        switch self {
        case .malformedJSON(let error): return "\(error)"
        case .malformedFrame(let why): return "malformed frame: \(why)"
        case .wrongType(let field, let expected, let found): return "\(field) must be \(expected), not \(found)"
        case .missingField(let field): return "\(field) is required"
        case .invalidField(let field, let reason): return "\(field) \(reason)"
        case .tooLarge(let field, let limit, let size): return "\(field) is \(size) bytes; the limit is \(limit)"
        case .unknownEvent(let topic, let event): return "event '\(event)' is not accepted on \(topic)"
        case .unknownTopic(let topic): return "no such topic '\(topic)'"
        }
    }
}
