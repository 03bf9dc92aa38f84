import Foundation

/// A query parameter as libpq receives it: bytes (or NULL) in text or binary format.
public struct PostgresBind: Sendable, Hashable {
    public var bytes: [UInt8]?
    public var isBinary: Bool
    /// The parameter's type OID, or 0 to let the server infer it.
    public var oid: UInt32

    public init(text: String?) { bytes = text.map { Array($0.utf8) }; isBinary = false; oid = 0 }
    public init(binary: [UInt8], oid: UInt32) { bytes = binary; isBinary = true; self.oid = oid }
    public static let null = PostgresBind(text: nil)
}

/// A Swift value that can be a query parameter.
public protocol PostgresEncodable: Sendable {
    var postgresBind: PostgresBind { get }
    /// The value in `COPY … FROM STDIN` text format (without escaping), or nil for NULL.
    var copyText: String? { get }
}

extension PostgresEncodable {
    public var copyText: String? { postgresBind.bytes.map { String(decoding: $0, as: UTF8.self) } }
}

/// A Swift value that can be read from a result column (text format).
public protocol PostgresDecodable: Sendable {
    /// Decodes `text` (nil for NULL) of a column of type `oid`.
    static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> Self
}

struct PostgresDecodingFailure: Error { let reason: String }

extension PostgresDecodable {
    static func present(_ text: [UInt8]?) throws -> String {
        guard let text else { throw PostgresDecodingFailure(reason: "NULL where \(Self.self) was expected") }
        return String(decoding: text, as: UTF8.self)
    }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresBind: PostgresBind { self?.postgresBind ?? .null }
    public var copyText: String? { self?.copyText }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> Self {
        guard let text else { return nil }
        return try Wrapped.decode(postgres: text, oid: oid)
    }
}

extension String: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { PostgresBind(text: self) }
    public static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> String { try present(text) }
}

/// Integers parse with the same rule; `init?(_ text:)` is the only difference.
private protocol PostgresInteger: FixedWidthInteger, PostgresEncodable, PostgresDecodable {}
extension PostgresInteger {
    public var postgresBind: PostgresBind { PostgresBind(text: String(self)) }
    public static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> Self {
        let string = try present(text)
        guard let value = Self(string) else { throw PostgresDecodingFailure(reason: "'\(string)' is not a \(Self.self)") }
        return value
    }
}
extension Int: PostgresInteger {}
extension Int64: PostgresInteger {}
extension Int32: PostgresInteger {}
extension Int16: PostgresInteger {}

extension Double: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { PostgresBind(text: String(self)) }
    public static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> Double {
        let string = try present(text)
        guard let value = Double(string) else { throw PostgresDecodingFailure(reason: "'\(string)' is not a number") }
        return value
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { PostgresBind(text: self ? "t" : "f") }
    public static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> Bool {
        switch try present(text) {
        case "t", "true": return true
        case "f", "false": return false
        case let other: throw PostgresDecodingFailure(reason: "'\(other)' is not a boolean")
        }
    }
}

extension UUID: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind { PostgresBind(text: uuidString.lowercased()) }
    public static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> UUID {
        let string = try present(text)
        guard let value = UUID(uuidString: string) else { throw PostgresDecodingFailure(reason: "'\(string)' is not a uuid") }
        return value
    }
}

/// `bytea`: sent in binary, read from the server's hex text form (`\x0a1b…`).
extension Array: PostgresEncodable, PostgresDecodable where Element == UInt8 {
    public var postgresBind: PostgresBind { PostgresBind(binary: self, oid: 17) }
    public var copyText: String? { "\\x" + hexString }

    public static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> [UInt8] {
        guard let text else { throw PostgresDecodingFailure(reason: "NULL where bytea was expected") }
        guard text.count >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x"), text.count % 2 == 0 else {
            throw PostgresDecodingFailure(reason: "not hex bytea output")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity((text.count - 2) / 2)
        var index = 2
        while index < text.count {
            guard let high = hexDigit(text[index]), let low = hexDigit(text[index + 1]) else {
                throw PostgresDecodingFailure(reason: "bad hex digit in bytea")
            }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

private func hexDigit(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// `timestamptz`: connections run with `TimeZone=UTC` and `DateStyle=ISO`, so the server
/// writes `2026-11-23 08:21:40.123456+00`; parameters are sent as ISO 8601 with offset.
extension Date: PostgresEncodable, PostgresDecodable {
    public var postgresBind: PostgresBind {
        let microseconds = (timeIntervalSince1970 * 1_000_000).rounded()
        let seconds = Int64((microseconds / 1_000_000).rounded(.down))
        let fraction = Int64(microseconds) - seconds * 1_000_000
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let text = String(format: "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", parts.tm_year + 1900, parts.tm_mon + 1,
                          parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, fraction)
        return PostgresBind(text: text)
    }

    public static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> Date {
        let string = try present(text)
        let bytes = Array(string.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            return Int(String(decoding: bytes[range], as: UTF8.self))
        }
        guard bytes.count >= 19, let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19) else {
            throw PostgresDecodingFailure(reason: "'\(string)' is not an ISO timestamp")
        }
        var index = 19
        var fraction = 0.0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            let start = index
            index += 1
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            fraction = Double(String(decoding: bytes[start..<index], as: UTF8.self)) ?? 0
        }
        var offsetSeconds = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            let hours = number(index + 1..<index + 3) ?? 0
            let minutes = bytes.count >= index + 6 ? (number(index + 4..<index + 6) ?? 0) : 0
            offsetSeconds = sign * (hours * 3600 + minutes * 60)
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let epoch = timegm(&parts)
        return Date(timeIntervalSince1970: Double(epoch - offsetSeconds) + fraction)
    }
}

/// A `json`/`jsonb` value holding a `Codable` Swift value.
public struct PostgresJSON<Value: Codable & Sendable>: PostgresEncodable, PostgresDecodable {
    public var value: Value
    public init(_ value: Value) { self.value = value }

    public var postgresBind: PostgresBind {
        PostgresBind(text: (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null")
    }

    public static func decode(postgres text: [UInt8]?, oid: UInt32) throws -> PostgresJSON<Value> {
        guard let text else { throw PostgresDecodingFailure(reason: "NULL where JSON was expected") }
        do {
            return PostgresJSON(try JSONDecoder().decode(Value.self, from: Data(text)))
        } catch {
            throw PostgresDecodingFailure(reason: "JSON does not decode as \(Value.self): \(error)")
        }
    }
}

/// One row of a result: text cells with their column names and type OIDs.
public struct PostgresRow: Sendable {
    public let columns: [String]
    let oids: [UInt32]
    let cells: [[UInt8]?]

    /// The value in column `index`, decoded as `T` (use an Optional type for nullable columns).
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at index: Int) throws -> T {
        guard cells.indices.contains(index) else {
            throw PostgresError.decoding(column: "#\(index)", reason: "the row has \(cells.count) columns")
        }
        do {
            return try T.decode(postgres: cells[index], oid: oids[index])
        } catch let failure as PostgresDecodingFailure {
            throw PostgresError.decoding(column: columns[index], reason: failure.reason)
        }
    }

    /// The value in the column named `column`, decoded as `T`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, _ column: String) throws -> T {
        guard let index = columns.firstIndex(of: column) else {
            throw PostgresError.decoding(column: column, reason: "no such column")
        }
        return try decode(type, at: index)
    }

    public func isNull(at index: Int) -> Bool { cells[index] == nil }
}

/// The rows a statement returned and how many rows it affected.
public struct PostgresRows: Sendable, RandomAccessCollection {
    public let columns: [String]
    public let rows: [PostgresRow]
    public let affectedRows: Int

    public var startIndex: Int { rows.startIndex }
    public var endIndex: Int { rows.endIndex }
    public subscript(position: Int) -> PostgresRow { rows[position] }
}
