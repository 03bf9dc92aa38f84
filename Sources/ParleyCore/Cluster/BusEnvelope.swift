/// What travels on the cluster bus (DESIGN §3): a versioned JSON envelope that names its
/// sender's incarnation, so a node ignores its own publications and an old incarnation's
/// replies, and a newer format is refused rather than misread.
public struct BusEnvelope: Sendable, Hashable {
    public static let version: Int64 = 1

    public enum Body: Sendable, Hashable {
        /// A server event for a client topic.
        case event(topic: String, event: String, payload: JSONValue)
        /// A request to the receiving node; the answer goes to `replyTo`'s inbox under `id`.
        case request(id: String, replyTo: String, body: JSONValue)
        case reply(id: String, body: JSONValue)
        /// Cluster control: `kind` names it (`member_removed`, `handoff`, …).
        case control(kind: String, body: JSONValue)
    }

    public var sender: NodeIdentity
    public var body: Body

    public init(sender: NodeIdentity, body: Body) {
        self.sender = sender
        self.body = body
    }

    public var bytes: [UInt8] {
        var object: [String: JSONValue] = ["v": .int(Self.version), "from": .string(sender.description)]
        switch body {
        case .event(let topic, let event, let payload):
            object["kind"] = "event"
            object["topic"] = .string(topic)
            object["event"] = .string(event)
            object["payload"] = payload
        case .request(let id, let replyTo, let body):
            object["kind"] = "request"
            object["id"] = .string(id)
            object["reply_to"] = .string(replyTo)
            object["body"] = body
        case .reply(let id, let body):
            object["kind"] = "reply"
            object["id"] = .string(id)
            object["body"] = body
        case .control(let kind, let body):
            object["kind"] = "control"
            object["control"] = .string(kind)
            object["body"] = body
        }
        return JSONValue.object(object).jsonBytes
    }

    public enum DecodeError: Error, Sendable, Hashable {
        case malformed(String)
        case unsupportedVersion(Int64)
    }

    public init(bytes: [UInt8]) throws(DecodeError) {
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch { throw .malformed("\(error)") }
        guard let version = json["v"]?.intValue else { throw .malformed("no version") }
        guard version == Self.version else { throw .unsupportedVersion(version) }
        guard let from = json["from"]?.stringValue.flatMap(NodeIdentity.init) else { throw .malformed("no sender") }
        func string(_ key: String) throws(DecodeError) -> String {
            guard let value = json[key]?.stringValue else { throw .malformed("no \(key)") }
            return value
        }
        let body: Body
        switch json["kind"]?.stringValue {
        case "event": body = .event(topic: try string("topic"), event: try string("event"), payload: json["payload"] ?? .null)
        case "request": body = .request(id: try string("id"), replyTo: try string("reply_to"), body: json["body"] ?? .null)
        case "reply": body = .reply(id: try string("id"), body: json["body"] ?? .null)
        case "control": body = .control(kind: try string("control"), body: json["body"] ?? .null)
        default: throw .malformed("unknown kind")
        }
        self.init(sender: from, body: body)
    }
}
