/// Base64 with the URL alphabet and no padding (RFC 4648 §5), as Web Push and JWTs use it.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let values: [UInt8: UInt32] = Dictionary(uniqueKeysWithValues: alphabet.enumerated().map { ($1, UInt32($0)) })

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var group: UInt32 = 0
            for offset in 0..<3 { group = group << 8 | UInt32(offset < count ? bytes[index + offset] : 0) }
            for offset in 0...count { out.append(alphabet[Int(group >> UInt32(18 - 6 * offset) & 63)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// nil when `text` is not base64url (padding, if any, is accepted).
    public static func decode(_ text: String) -> [UInt8]? {
        var symbols = Array(text.utf8)
        while symbols.last == UInt8(ascii: "=") { symbols.removeLast() }
        guard symbols.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(symbols.count * 3 / 4)
        var index = 0
        while index < symbols.count {
            let count = min(4, symbols.count - index)
            var group: UInt32 = 0
            for offset in 0..<4 {
                var value: UInt32 = 0
                if offset < count {
                    guard let known = values[symbols[index + offset]] else { return nil }
                    value = known
                }
                group = group << 6 | value
            }
            for offset in 0..<(count - 1) { out.append(UInt8(group >> UInt32(16 - 8 * offset) & 0xFF)) }
            index += 4
        }
        return out
    }
}
