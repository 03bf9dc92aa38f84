import FuzzSupport
import ParleyCore

/// HTTP API request bodies as the routes read them: the first byte picks the route, the rest
/// is the body. JSON parsing, then the fields each route reads (sign-up, sign-in, workspace,
/// member, channel, message); every refusal is a `ProtocolError` with a reason (the API's
/// `invalid_payload` / `too_large`), every accepted field within its bounds.
func fuzzAPIBody(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let bytes = FuzzSupport.bytes(data, count)
    guard let json = try? JSONParser.parse(Array(bytes.dropFirst())) else { return 0 }
    do {
        let body = try PayloadReader(json)
        var read: [(String, Int)] = []
        switch bytes[0] % 6 {
        case 0:  // POST /api/signup
            read = [(try body.string("email", maxLength: 254), 254), (try body.string("display_name", maxLength: 80), 80),
                    (try body.string("password", maxLength: 200, minLength: 8), 200)]
        case 1:  // POST /api/signin
            read = [(try body.string("email", maxLength: 254), 254), (try body.string("password", maxLength: 200), 200)]
        case 2:  // POST /api/workspaces
            read = [(try body.string("name", maxLength: 80), 80)]
            if let slug = try body.optionalID("slug"), !Topic.isValidID(slug) { fatalError("an invalid slug accepted: \(slug)") }
        case 3:  // POST /api/workspaces/{id}/members
            read = [(try body.string("email", maxLength: 254), 254)]
        case 4:  // POST /api/workspaces/{id}/channels
            read = [(try body.string("name", maxLength: 80), 80)]
            if let kind = try body.optionalString("kind", maxLength: 16) { read.append((kind, 16)) }
        default:  // POST /api/channels/{id}/messages
            if case .newMessage(let text, let clientID, _) = try ChannelCommand(event: "new_message", payload: json) {
                read = [(text, PayloadLimits().maximumBodyCharacters)] + (clientID.map { [($0, 64)] } ?? [])
            }
        }
        for (value, limit) in read where value.isEmpty || value.count > limit {
            fatalError("a field of \(value.count) characters accepted under a limit of \(limit)")
        }
    } catch {
        if error.reason.isEmpty { fatalError("a refusal without a reason: \(error)") }
    }
    return 0
}

runFuzzer { data, count in fuzzAPIBody(data, count) }
