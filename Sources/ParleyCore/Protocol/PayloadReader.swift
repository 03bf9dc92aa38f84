/// Reads typed fields out of a JSON payload object, throwing `ProtocolError`s that name the field.
public struct PayloadReader: Sendable {
    public let members: [String: JSONValue]

    public init(_ payload: JSONValue) throws(ProtocolError) {
        guard case .object(let members) = payload else {
            throw .wrongType(field: "payload", expected: "an object", found: payload.typeName)
        }
        self.members = members
    }

    /// A string field, required unless `optional`, with its length in characters bounded. No
    /// control character is accepted (NUL cannot even be stored: PostgreSQL text has none);
    /// a `multiline` field (a message body) may hold line feeds, carriage returns and tabs.
    public func string(_ field: String, maxLength: Int, minLength: Int = 1, multiline: Bool = false) throws(ProtocolError) -> String {
        guard let value = try optionalString(field, maxLength: maxLength, minLength: minLength, multiline: multiline) else {
            throw .missingField(field)
        }
        return value
    }

    public func optionalString(_ field: String, maxLength: Int, minLength: Int = 1, multiline: Bool = false) throws(ProtocolError) -> String? {
        guard let value = members[field], value != .null else { return nil }
        guard case .string(let text) = value else { throw .wrongType(field: field, expected: "a string", found: value.typeName) }
        if text.utf8.count > maxLength * 4 || text.count > maxLength {
            throw .tooLarge(field: field, limit: maxLength, size: text.count)
        }
        guard text.count >= minLength else {
            throw .invalidField(field: field, reason: minLength == 1 ? "must not be empty" : "must be at least \(minLength) characters")
        }
        for scalar in text.unicodeScalars where scalar.properties.generalCategory == .control {
            if multiline && (scalar == "\n" || scalar == "\r" || scalar == "\t") { continue }
            throw .invalidField(field: field, reason: "must not contain control characters (found U+\(String(scalar.value, radix: 16, uppercase: true)))")
        }
        return text
    }

    /// An id field (see `Topic.isValidID`).
    public func id(_ field: String) throws(ProtocolError) -> String {
        guard let value = try optionalID(field) else { throw .missingField(field) }
        return value
    }

    public func optionalID(_ field: String) throws(ProtocolError) -> String? {
        guard let text = try optionalString(field, maxLength: 64) else { return nil }
        guard Topic.isValidID(text) else { throw .invalidField(field: field, reason: "is not a valid id") }
        return text
    }

    public func int(_ field: String, in range: ClosedRange<Int64>) throws(ProtocolError) -> Int64 {
        guard let value = try optionalInt(field, in: range) else { throw .missingField(field) }
        return value
    }

    public func optionalInt(_ field: String, in range: ClosedRange<Int64>) throws(ProtocolError) -> Int64? {
        guard let value = members[field], value != .null else { return nil }
        guard let number = value.intValue else { throw .wrongType(field: field, expected: "an integer", found: value.typeName) }
        guard range.contains(number) else {
            throw .invalidField(field: field, reason: "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return number
    }
}
