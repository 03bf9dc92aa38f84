import FuzzSupport
import ParleyCore

/// Client events as a channel receives them: the first byte picks the event name (one of
/// those Parley knows, or an unknown one), the rest is the JSON payload. Decoding either
/// refuses with a `ProtocolError` naming a reason or yields a command within the limits.
let events = ["new_message", "edit_message", "delete_message", "typing_start", "typing_stop", "add_reaction",
              "remove_reaction", "mark_read", "load_history", "phx_join", "no_such_event"]

func fuzzClientEvent(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let bytes = FuzzSupport.bytes(data, count)
    let event = events[Int(bytes[0]) % events.count]
    guard let payload = try? JSONParser.parse(Array(bytes.dropFirst())) else { return 0 }
    let limits = PayloadLimits()
    if event == "phx_join" {
        if let join = try? JoinRequest(payload: payload), let seq = join.lastSeq, seq < 0 {
            fatalError("a join with a negative last_seq: \(seq)")
        }
        return 0
    }
    do {
        switch try ChannelCommand(event: event, payload: payload, limits: limits) {
        case .newMessage(let body, _, _), .editMessage(_, let body):
            if body.isEmpty || body.count > limits.maximumBodyCharacters || body.utf8.count > 4 * limits.maximumBodyCharacters {
                fatalError("a body outside the limits: \(body.count) characters, \(body.utf8.count) bytes")
            }
            if body.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && !"\n\r\t".unicodeScalars.contains($0) }) {
                fatalError("a body with a control character")
            }
        case .markRead(let seq):
            if seq < 0 { fatalError("mark_read of a negative seq") }
        case .loadHistory(_, _, let limit):
            if limit < 1 || limit > limits.maximumHistoryPage { fatalError("a history page of \(limit)") }
        default:
            break
        }
    } catch {
        if error.reason.isEmpty { fatalError("a refusal without a reason: \(error)") }
    }
    return 0
}

runFuzzer { data, count in fuzzClientEvent(data, count) }
