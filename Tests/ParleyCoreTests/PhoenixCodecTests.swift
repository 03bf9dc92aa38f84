import ParleyCore
import Testing

@Suite("Phoenix codec")
struct PhoenixCodecTests {
    @Test func v2TextFrameRoundTripsLikePhoenix() throws {
        let frame = try PhoenixCodec.v2.decode(text: #"["1","2","channel:abc","new_message",{"body":"hi","client_msg_id":"c1"}]"#)
        #expect(frame == PhoenixFrame(joinRef: "1", ref: "2", topic: "channel:abc", event: "new_message",
                                      json: ["body": "hi", "client_msg_id": "c1"]))
        // Phoenix's own test vector: a reply with null refs.
        let reply = PhoenixFrame(topic: "t", event: "phx_reply", json: ["response": "m", "status": nil])
        #expect(PhoenixCodec.v2.encode(reply) == .text(#"[null,null,"t","phx_reply",{"response":"m","status":null}]"#))
        #expect(PhoenixCodec.v2.encode(PhoenixFrame(topic: "t", event: "e", json: ["m": 1])) == .text(#"[null,null,"t","e",{"m":1}]"#))
    }

    @Test func heartbeatAndJoinAsTheJavaScriptClientSendsThem() throws {
        let heartbeat = try PhoenixCodec.v2.decode(text: #"[null,"5","phoenix","heartbeat",{}]"#)
        #expect(heartbeat.topic == "phoenix" && heartbeat.event == "heartbeat" && heartbeat.joinRef == nil && heartbeat.ref == "5")
        let join = try PhoenixCodec.v2.decode(text: #"["3","3","channel:c1","phx_join",{"last_seq":10}]"#)
        #expect(try JoinRequest(payload: join.json) == JoinRequest(lastSeq: 10))
        let ok = PhoenixFrame.reply(to: join, status: "ok", response: [:])
        #expect(PhoenixCodec.v2.encode(ok) == .text(#"["3","3","channel:c1","phx_reply",{"response":{},"status":"ok"}]"#))
    }

    @Test func v1ObjectFramesAsThirdPartyClientsSendThem() throws {
        let frame = try PhoenixCodec.v1.decode(text: #"{"topic":"channel:c","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}"#)
        #expect(frame == PhoenixFrame(joinRef: "1", ref: "1", topic: "channel:c", event: "phx_join", json: [:]))
        // Integer refs (some clients) are accepted as strings.
        let numeric = try PhoenixCodec.v1.decode(text: #"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":7}"#)
        #expect(numeric.ref == "7")
        // Phoenix echoes a ref as it came: clients such as phxsocket match replies by the integer.
        #expect(PhoenixCodec.v1.encode(.reply(to: numeric, status: "ok", response: [:]))
                == .text(#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":7,"topic":"phoenix"}"#))
        let encoded = PhoenixCodec.v1.encode(PhoenixFrame.reply(to: frame, status: "ok", response: [:]))
        #expect(encoded == .text(#"{"event":"phx_reply","join_ref":"1","payload":{"response":{},"status":"ok"},"ref":"1","topic":"channel:c"}"#))
        let broadcast = PhoenixCodec.v1.encode(PhoenixFrame(topic: "t", event: "e", json: ["m": 1]))
        #expect(broadcast == .text(#"{"event":"e","payload":{"m":1},"ref":null,"topic":"t"}"#))
    }

    @Test func codecIsChosenByVsnLikePhoenix() {
        #expect(PhoenixCodec(vsn: "2.0.0") == .v2)
        #expect(PhoenixCodec(vsn: "1.0.0") == .v1)
        #expect(PhoenixCodec(vsn: nil) == .v1)
        #expect(PhoenixCodec(vsn: "3.0.0") == nil)
    }

    @Test func binaryClientPushDecodesLikePhoenixTestVector() throws {
        // Phoenix's V2.JSONSerializerTest @client_push.
        let bytes: [UInt8] = [0, 2, 3, 5, 5] + Array("12".utf8) + Array("123".utf8) + Array("topic".utf8) + Array("event".utf8) + [101, 102, 103]
        let frame = try PhoenixCodec.v2.decode(binary: bytes)
        #expect(frame == PhoenixFrame(joinRef: "12", ref: "123", topic: "topic", event: "event", payload: .binary([101, 102, 103])))
        #expect(throws: ProtocolError.malformedFrame("binary frames need vsn 2.0.0")) { try PhoenixCodec.v1.decode(binary: bytes) }
    }

    @Test func binaryServerFramesEncodeLikePhoenix() {
        // Phoenix's @reply vector: <<1, 2, 3, 5, 2, "12", "123", "topic", "ok", 101, 102, 103>>.
        let request = PhoenixFrame(joinRef: "12", ref: "123", topic: "topic", event: "event", payload: .binary([]))
        #expect(PhoenixCodec.binaryReply(to: request, status: "ok", data: [101, 102, 103])
                == [1, 2, 3, 5, 2] + Array("12".utf8) + Array("123".utf8) + Array("topic".utf8) + Array("ok".utf8) + [101, 102, 103])
        // Push: <<0, join_ref_size, topic_size, event_size, join_ref, topic, event, data>>.
        let push = PhoenixFrame(joinRef: "12", topic: "topic", event: "event", payload: .binary([101, 102, 103]))
        #expect(PhoenixCodec.v2.encode(push)
                == .binary([0, 2, 5, 5] + Array("12".utf8) + Array("topic".utf8) + Array("event".utf8) + [101, 102, 103]))
        // Broadcast: <<2, topic_size, event_size, topic, event, data>>.
        let broadcast = PhoenixFrame(topic: "topic", event: "event", payload: .binary([101, 102, 103]))
        #expect(PhoenixCodec.v2.encode(broadcast)
                == .binary([2, 5, 5] + Array("topic".utf8) + Array("event".utf8) + [101, 102, 103]))
    }

    @Test func malformedFramesComeBackAsTypedErrors() {
        func error(_ codec: PhoenixCodec, _ text: String) -> ProtocolError? {
            do { _ = try codec.decode(text: text); return nil } catch { return error }
        }
        #expect(error(.v2, "[1,2") .map { if case .malformedJSON = $0 { true } else { false } } == true)
        #expect(error(.v2, #"["1","2","t","e"]"#) == .malformedFrame("expected 5 elements, got 4"))
        #expect(error(.v2, #"{"topic":"t"}"#) == .malformedFrame("expected [join_ref, ref, topic, event, payload], got object"))
        #expect(error(.v2, #"[null,null,5,"e",{}]"#) == .wrongType(field: "topic", expected: "a string", found: "number"))
        #expect(error(.v2, #"[null,{},"t","e",{}]"#) == .wrongType(field: "ref", expected: "a string or null", found: "object"))
        #expect(error(.v2, #"[null,null,"","e",{}]"#) == .invalidField(field: "topic", reason: "must not be empty"))
        #expect(error(.v1, #"{"event":"e"}"#) == .missingField("topic"))
        #expect(error(.v1, "[]") == .malformedFrame("expected a JSON object, got array"))
        let big = "[null,null,\"t\",\"e\",\"" + String(repeating: "x", count: 2000) + "\"]"
        do {
            _ = try PhoenixCodec.v2.decode(text: big, maximumBytes: 1000)
            Issue.record("an oversized frame must be refused")
        } catch {
            #expect(error.reason == "too_large")
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(error(.v2, "[null,null,\"t\",\"e\",\(deep)]").map { if case .malformedJSON = $0 { true } else { false } } == true)
    }

    @Test func topicsParseAndRejectTheUnknown() throws {
        #expect(try Topic("channel:abc-123") == .channel("abc-123"))
        #expect(try Topic("workspace:w_1") == .workspace("w_1"))
        #expect(try Topic("phoenix") == .phoenix)
        #expect(throws: ProtocolError.unknownTopic("room:1")) { try Topic("room:1") }
        #expect(throws: ProtocolError.unknownTopic("channel:")) { try Topic("channel:") }
        #expect(throws: ProtocolError.unknownTopic("channel:a b")) { try Topic("channel:a b") }
    }
}
