/// Phoenix's two serializers, chosen by the socket's `vsn` query parameter.
///
/// - `2.0.0` (`Phoenix.Socket.V2.JSONSerializer`): text frames are JSON arrays
///   `[join_ref, ref, topic, event, payload]`; binary frames carry raw payloads:
///   client push `<<0, join_ref_size, ref_size, topic_size, event_size, join_ref, ref, topic, event, data>>`,
///   server push `<<0, join_ref_size, topic_size, event_size, join_ref, topic, event, data>>`,
///   reply `<<1, join_ref_size, ref_size, topic_size, status_size, join_ref, ref, topic, status, data>>`,
///   broadcast `<<2, topic_size, event_size, topic, event, data>>`.
/// - `1.0.0` (`Phoenix.Socket.V1.JSONSerializer`): JSON objects with `topic`, `event`,
///   `payload`, `ref` (and `join_ref` when the client sends one); no binary form.
public enum PhoenixCodec: String, Sendable, CaseIterable {
    case v1 = "1.0.0"
    case v2 = "2.0.0"

    /// The codec for a `vsn` query value; Phoenix's JavaScript client defaults to 2.0.0, and a
    /// socket without `vsn` is 1.0.0, as in Phoenix.
    public init?(vsn: String?) {
        guard let vsn else { self = .v1; return }
        self.init(rawValue: vsn)
    }

    public static let defaultMaximumFrameBytes = 1 << 20

    // MARK: Decoding client frames

    /// Decodes a text frame from a client. Never traps: every failure is a `ProtocolError`.
    public func decode(text: String, maximumBytes: Int = defaultMaximumFrameBytes) throws(ProtocolError) -> PhoenixFrame {
        try decode(textBytes: Array(text.utf8), maximumBytes: maximumBytes)
    }

    public func decode(textBytes bytes: [UInt8], maximumBytes: Int = defaultMaximumFrameBytes) throws(ProtocolError) -> PhoenixFrame {
        guard bytes.count <= maximumBytes else { throw .tooLarge(field: "frame", limit: maximumBytes, size: bytes.count) }
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw .malformedJSON(error)
        }
        switch self {
        case .v2: return try Self.decodeArray(value)
        case .v1: return try Self.decodeObject(value)
        }
    }

    /// Decodes a binary frame from a client (v2 only: the binary push).
    public func decode(binary bytes: [UInt8], maximumBytes: Int = defaultMaximumFrameBytes) throws(ProtocolError) -> PhoenixFrame {
        guard bytes.count <= maximumBytes else { throw .tooLarge(field: "frame", limit: maximumBytes, size: bytes.count) }
        guard self == .v2 else { throw .malformedFrame("binary frames need vsn 2.0.0") }
        guard bytes.count >= 5 else { throw .malformedFrame("binary frame shorter than its header") }
        guard bytes[0] == 0 else { throw .malformedFrame("binary frame kind \(bytes[0]) is not a push") }
        var reader = BinaryReader(bytes: bytes, offset: 5)
        let joinRef = try reader.string(Int(bytes[1]), field: "join_ref")
        let ref = try reader.string(Int(bytes[2]), field: "ref")
        let topic = try reader.string(Int(bytes[3]), field: "topic")
        let event = try reader.string(Int(bytes[4]), field: "event")
        return PhoenixFrame(joinRef: joinRef.isEmpty ? nil : joinRef, ref: ref.isEmpty ? nil : ref, topic: topic,
                            event: event, payload: .binary(reader.rest))
    }

    private static func decodeArray(_ value: JSONValue) throws(ProtocolError) -> PhoenixFrame {
        guard case .array(let parts) = value else { throw .malformedFrame("expected [join_ref, ref, topic, event, payload], got \(value.typeName)") }
        guard parts.count == 5 else { throw .malformedFrame("expected 5 elements, got \(parts.count)") }
        return PhoenixFrame(joinRef: try optionalRef(parts[0], "join_ref"), ref: try optionalRef(parts[1], "ref"),
                            topic: try requiredString(parts[2], "topic"), event: try requiredString(parts[3], "event"),
                            payload: .json(parts[4]))
    }

    private static func decodeObject(_ value: JSONValue) throws(ProtocolError) -> PhoenixFrame {
        guard case .object(let members) = value else { throw .malformedFrame("expected a JSON object, got \(value.typeName)") }
        guard let topic = members["topic"] else { throw .missingField("topic") }
        guard let event = members["event"] else { throw .missingField("event") }
        var frame = PhoenixFrame(joinRef: try optionalRef(members["join_ref"] ?? .null, "join_ref"),
                                 ref: try optionalRef(members["ref"] ?? .null, "ref"),
                                 topic: try requiredString(topic, "topic"), event: try requiredString(event, "event"),
                                 payload: .json(members["payload"] ?? .object([:])))
        if case .int = members["ref"] { frame.refsAreIntegers = true }
        return frame
    }

    /// Refs are strings in Phoenix's clients; some third-party clients send integers.
    private static func optionalRef(_ value: JSONValue, _ field: String) throws(ProtocolError) -> String? {
        switch value {
        case .null: return nil
        case .string(let text): return text
        case .int(let number): return String(number)
        default: throw .wrongType(field: field, expected: "a string or null", found: value.typeName)
        }
    }

    private static func requiredString(_ value: JSONValue, _ field: String) throws(ProtocolError) -> String {
        guard case .string(let text) = value else { throw .wrongType(field: field, expected: "a string", found: value.typeName) }
        guard !text.isEmpty else { throw .invalidField(field: field, reason: "must not be empty") }
        guard text.utf8.count <= 255 else { throw .tooLarge(field: field, limit: 255, size: text.utf8.count) }
        return text
    }

    // MARK: Encoding server frames

    /// Encodes a frame for the client: JSON text, or the v2 binary form for binary payloads
    /// (a broadcast when the frame has no join ref, else a push; replies with binary data are
    /// made by `binaryReply(to:status:data:)`).
    public func encode(_ frame: PhoenixFrame) -> WebSocketMessage {
        switch (self, frame.payload) {
        case (_, .json(let payload)):
            return .text(encodeJSON(frame, payload: payload))
        case (.v2, .binary(let data)):
            return .binary(Self.encodeBinary(frame, data: data))
        case (.v1, .binary(let data)):
            // v1 has no binary form: send the bytes as an array of numbers so nothing is lost.
            return .text(encodeJSON(frame, payload: .array(data.map { .int(Int64($0)) })))
        }
    }

    private func encodeJSON(_ frame: PhoenixFrame, payload: JSONValue) -> String {
        func encodeRef(_ ref: String?) -> JSONValue {
            guard let ref else { return .null }
            if frame.refsAreIntegers, let number = Int64(ref) { return .int(number) }
            return .string(ref)
        }
        let joinRef = encodeRef(frame.joinRef)
        let ref = encodeRef(frame.ref)
        switch self {
        case .v2:
            return JSONValue.array([joinRef, ref, .string(frame.topic), .string(frame.event), payload]).jsonText
        case .v1:
            var members: [String: JSONValue] = ["topic": .string(frame.topic), "event": .string(frame.event),
                                                "payload": payload, "ref": ref]
            if frame.joinRef != nil { members["join_ref"] = joinRef }
            return JSONValue.object(members).jsonText
        }
    }

    private static func encodeBinary(_ frame: PhoenixFrame, data: [UInt8]) -> [UInt8] {
        // A server push carries the join ref but no ref; without a join ref it is a broadcast.
        let joinRef = Array((frame.joinRef ?? "").utf8.prefix(255))
        let topic = Array(frame.topic.utf8.prefix(255))
        let event = Array(frame.event.utf8.prefix(255))
        if frame.joinRef == nil {
            return [2, UInt8(topic.count), UInt8(event.count)] + topic + event + data
        }
        return [0, UInt8(joinRef.count), UInt8(topic.count), UInt8(event.count)] + joinRef + topic + event + data
    }

    /// A binary reply with an explicit status (Phoenix's `{:reply, {status, {:binary, data}}}`).
    public static func binaryReply(to request: PhoenixFrame, status: String, data: [UInt8]) -> [UInt8] {
        let joinRef = Array((request.joinRef ?? "").utf8.prefix(255))
        let ref = Array((request.ref ?? "").utf8.prefix(255))
        let topic = Array(request.topic.utf8.prefix(255))
        let statusBytes = Array(status.utf8.prefix(255))
        return [1, UInt8(joinRef.count), UInt8(ref.count), UInt8(topic.count), UInt8(statusBytes.count)]
            + joinRef + ref + topic + statusBytes + data
    }
}

private struct BinaryReader {
    let bytes: [UInt8]
    var offset: Int

    mutating func string(_ count: Int, field: String) throws(ProtocolError) -> String {
        guard offset + count <= bytes.count else { throw .malformedFrame("binary frame ends inside \(field)") }
        defer { offset += count }
        guard let text = String(validating: bytes[offset..<offset + count], as: UTF8.self) else {
            throw .malformedFrame("\(field) is not valid UTF-8")
        }
        return text
    }

    var rest: [UInt8] { Array(bytes[offset...]) }
}
