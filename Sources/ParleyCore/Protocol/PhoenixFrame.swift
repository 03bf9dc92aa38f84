/// One Phoenix Channels message: `[join_ref, ref, topic, event, payload]`.
public struct PhoenixFrame: Sendable, Hashable {
    /// A frame's payload: JSON, or raw bytes (the v2 binary form).
    public enum Payload: Sendable, Hashable {
        case json(JSONValue)
        case binary([UInt8])
    }

    public var joinRef: String?
    public var ref: String?
    public var topic: String
    public var event: String
    public var payload: Payload
    /// The client sent its refs as JSON integers (some v1 clients do); replies echo them so,
    /// as Phoenix does, since such clients match replies by the integer.
    public var refsAreIntegers = false

    public init(joinRef: String? = nil, ref: String? = nil, topic: String, event: String, payload: Payload) {
        self.joinRef = joinRef
        self.ref = ref
        self.topic = topic
        self.event = event
        self.payload = payload
    }

    public init(joinRef: String? = nil, ref: String? = nil, topic: String, event: String, json: JSONValue) {
        self.init(joinRef: joinRef, ref: ref, topic: topic, event: event, payload: .json(json))
    }

    /// The JSON payload, or an empty object for a binary one.
    public var json: JSONValue {
        if case .json(let value) = payload { return value }
        return .object([:])
    }

    /// A `phx_reply` to `request` with `status` ("ok" / "error") and `response`.
    public static func reply(to request: PhoenixFrame, status: String, response: JSONValue) -> PhoenixFrame {
        var frame = PhoenixFrame(joinRef: request.joinRef, ref: request.ref, topic: request.topic, event: "phx_reply",
                                 json: ["status": .string(status), "response": response])
        frame.refsAreIntegers = request.refsAreIntegers
        return frame
    }

    /// A `phx_reply` with `{"status": "error", "response": {"reason": …}}`.
    public static func errorReply(to request: PhoenixFrame, reason: String, message: String? = nil) -> PhoenixFrame {
        var response: [String: JSONValue] = ["reason": .string(reason)]
        if let message { response["message"] = .string(message) }
        return reply(to: request, status: "error", response: .object(response))
    }
}

/// What a codec produced for the socket: a text or a binary WebSocket message.
public enum WebSocketMessage: Sendable, Hashable {
    case text(String)
    case binary([UInt8])
}
