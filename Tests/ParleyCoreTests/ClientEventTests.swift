import ParleyCore
import Testing

@Suite("Client events and payload validation")
struct ClientEventTests {
    @Test func everyChannelEventDecodes() throws {
        #expect(try ChannelCommand(event: "new_message", payload: ["body": "hello", "client_msg_id": "c-1"])
                == .newMessage(body: "hello", clientMessageID: "c-1", threadRootID: nil))
        #expect(try ChannelCommand(event: "new_message", payload: ["body": "re", "thread_root_id": "m1"])
                == .newMessage(body: "re", clientMessageID: nil, threadRootID: "m1"))
        #expect(try ChannelCommand(event: "edit_message", payload: ["message_id": "m1", "body": "new"])
                == .editMessage(messageID: "m1", body: "new"))
        #expect(try ChannelCommand(event: "delete_message", payload: ["message_id": "m1"]) == .deleteMessage(messageID: "m1"))
        #expect(try ChannelCommand(event: "typing_start", payload: [:]) == .typingStart)
        #expect(try ChannelCommand(event: "typing_stop", payload: [:]) == .typingStop)
        #expect(try ChannelCommand(event: "add_reaction", payload: ["message_id": "m1", "emoji": "👍"])
                == .addReaction(messageID: "m1", emoji: "👍"))
        #expect(try ChannelCommand(event: "remove_reaction", payload: ["message_id": "m1", "emoji": "👍"])
                == .removeReaction(messageID: "m1", emoji: "👍"))
        #expect(try ChannelCommand(event: "mark_read", payload: ["seq": 12]) == .markRead(seq: 12))
        #expect(try ChannelCommand(event: "load_history", payload: ["before": 100, "limit": 20])
                == .loadHistory(before: 100, after: nil, limit: 20))
        #expect(try ChannelCommand(event: "load_history", payload: ["after": 0]) == .loadHistory(before: nil, after: 0, limit: 50))
    }

    @Test func invalidPayloadsNameTheFieldAndReason() {
        func failure(_ event: String, _ payload: JSONValue) -> ProtocolError? {
            do { _ = try ChannelCommand(event: event, payload: payload); return nil } catch { return error }
        }
        #expect(failure("new_message", [:]) == .missingField("body"))
        #expect(failure("new_message", ["body": ""]) == .invalidField(field: "body", reason: "must not be empty"))
        #expect(failure("new_message", ["body": 5]) == .wrongType(field: "body", expected: "a string", found: "number"))
        #expect(failure("new_message", ["body": .string(String(repeating: "a", count: 4001))])
                == .tooLarge(field: "body", limit: 4000, size: 4001))
        #expect(failure("new_message", ["body": .string(String(repeating: "a", count: 4001))])?.reason == "too_large")
        #expect(failure("new_message", "text") == .wrongType(field: "payload", expected: "an object", found: "string"))
        #expect(failure("edit_message", ["message_id": "bad id", "body": "x"]) == .invalidField(field: "message_id", reason: "is not a valid id"))
        #expect(failure("mark_read", ["seq": -1]) == .invalidField(field: "seq", reason: "must be between 0 and 9223372036854775807"))
        #expect(failure("mark_read", ["seq": 1.5]) == .wrongType(field: "seq", expected: "an integer", found: "number"))
        #expect(failure("load_history", ["limit": 1000]) == .invalidField(field: "limit", reason: "must be between 1 and 100"))
        #expect(failure("load_history", ["before": 5, "after": 1]) == .invalidField(field: "before", reason: "and after cannot both be given"))
        #expect(failure("shout", [:]) == .unknownEvent(topic: "channel", event: "shout"))
        #expect(failure("shout", [:])?.reason == "unknown_event")
        #expect(failure("new_message", [:])?.reason == "invalid_payload")
    }

    @Test func serverEventsHaveDesignNamesAndPayloads() {
        let message = MessageView(id: "m1", channelID: "c1", seq: 7, userID: "u1", body: "hi", createdAt: 1000)
        let frame = ServerEvent.messageCreated(message).frame(topic: "channel:c1")
        #expect(frame.event == "message_created")
        #expect(frame.json["seq"] == 7)
        #expect(frame.json["thread_root_id"] == .null)
        #expect(ServerEvent.typing(userID: "u1", typing: true).payload == ["user_id": "u1", "typing": true])
        #expect(ServerEvent.readReceipt(userID: "u1", seq: 3).name == "read_receipt")
    }
}
