/// Structured parts of a message body: mentions and links, found once by the server so
/// clients need not parse text. Offsets and lengths count UTF-16 code units (what
/// JavaScript strings index by).
public enum MessageEntity: Sendable, Hashable {
    /// `@handle`.
    case mention(handle: String, offset: Int, length: Int)
    /// `@channel`, `@here`, `@everyone`.
    case channelMention(String, offset: Int, length: Int)
    /// An `http://` or `https://` URL.
    case link(url: String, offset: Int, length: Int)

    public static let channelWide: Set<String> = ["channel", "here", "everyone"]

    public var json: JSONValue {
        switch self {
        case .mention(let handle, let offset, let length):
            return ["type": "mention", "handle": .string(handle), "offset": .int(Int64(offset)), "length": .int(Int64(length))]
        case .channelMention(let name, let offset, let length):
            return ["type": "channel_mention", "name": .string(name), "offset": .int(Int64(offset)), "length": .int(Int64(length))]
        case .link(let url, let offset, let length):
            return ["type": "link", "url": .string(url), "offset": .int(Int64(offset)), "length": .int(Int64(length))]
        }
    }

    /// The entities of `body`, in order.
    public static func parse(_ body: String) -> [MessageEntity] {
        let characters = Array(body)
        var entities: [MessageEntity] = []
        var offset = 0
        var index = 0
        func isHandle(_ character: Character) -> Bool {
            character.isLetter || character.isNumber || character == "_" || character == "-" || character == "."
        }
        while index < characters.count {
            let character = characters[index]
            let startsWord = index == 0 || !(isHandle(characters[index - 1]) || characters[index - 1] == "@")
            if character == "@" && startsWord {
                var end = index + 1
                while end < characters.count && isHandle(characters[end]) && end - index <= 64 { end += 1 }
                while end > index + 1 && characters[end - 1] == "." { end -= 1 }
                if end > index + 1 {
                    let handle = String(characters[(index + 1)..<end])
                    let length = String(characters[index..<end]).utf16.count
                    entities.append(channelWide.contains(handle.lowercased())
                        ? .channelMention(handle.lowercased(), offset: offset, length: length)
                        : .mention(handle: handle, offset: offset, length: length))
                    offset += length
                    index = end
                    continue
                }
            }
            if startsWord && (character == "h" || character == "H") {
                let rest = String(characters[index..<min(characters.count, index + 8)]).lowercased()
                if rest.hasPrefix("https://") || rest.hasPrefix("http://") {
                    var end = index
                    while end < characters.count && !characters[end].isWhitespace { end += 1 }
                    while end > index && ".,;:!?)]}\"'>".contains(characters[end - 1]) { end -= 1 }
                    let url = String(characters[index..<end])
                    if url.count > (rest.hasPrefix("https://") ? 8 : 7) {
                        entities.append(.link(url: url, offset: offset, length: url.utf16.count))
                        offset += url.utf16.count
                        index = end
                        continue
                    }
                }
            }
            offset += String(character).utf16.count
            index += 1
        }
        return entities
    }
}
