import Glibc
import Foundation
import HummingbirdTesting
import ParleyCore
import ParleyGateway
import ParleyTestSupport
import Testing

@Suite("One node end to end: HTTP API and Phoenix WebSocket")
struct ChatTests {
    /// Alice and Bob in one workspace channel.
    static func room(_ client: any TestClientProtocol) async throws -> (alice: TestUser, bob: TestUser, channel: String, workspace: String) {
        let alice = try await client.signUp("alice")
        let bob = try await client.signUp("bob")
        let (_, workspace) = try await client.json(.post, "/api/workspaces", token: alice.token, body: ["name": "Acme"])
        let workspaceID = workspace["workspace"]?["id"]?.stringValue ?? ""
        let (_, channel) = try await client.json(.post, "/api/workspaces/\(workspaceID)/channels", token: alice.token,
                                                 body: ["name": "general"])
        let channelID = channel["channel"]?["id"]?.stringValue ?? ""
        return (alice, bob, channelID, workspaceID)
    }

    /// Issue 14.10: an admin removes Bob from the channel: his socket gets `phx_close` and
    /// nothing more, and history, receipts and sending stop for him at once; a member cannot
    /// remove anyone, and a private channel is listed to its members only.
    @Test func removalFromAChannelStopsEverythingForThatUserAtOnce() async throws {
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode { client, _ in
                let (alice, bob, channel, workspace) = try await Self.room(client)
                let topic = "channel:\(channel)"
                try await client.addMember(bob, to: workspace, by: alice)
                _ = try await client.json(.post, "/api/channels/\(channel)/join", token: bob.token)
                let (_, secret) = try await client.json(.post, "/api/workspaces/\(workspace)/channels", token: alice.token,
                                                        body: ["name": "secret", "kind": "private"])
                let (_, listed) = try await client.json(.get, "/api/workspaces/\(workspace)/channels", token: bob.token)
                #expect(listed["channels"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["general"],
                        "the private channel \(secret["channel"]?["id"] ?? .null) is not listed to a non-member")
                let (memberTries, _) = try await client.json(.delete, "/api/channels/\(channel)/members/\(alice.id)", token: bob.token)
                #expect(memberTries == .forbidden)

                let aliceSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(alice.token)")
                let bobSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(bob.token)")
                #expect(try await aliceSocket.reply(to: aliceSocket.push(topic, "phx_join", [:], joinRef: "1")).status == "ok")
                #expect(try await bobSocket.reply(to: bobSocket.push(topic, "phx_join", [:], joinRef: "1")).status == "ok")
                _ = try await aliceSocket.reply(to: aliceSocket.push(topic, "new_message", ["body": "before"], joinRef: "1"))
                #expect(try await bobSocket.event("message_created", on: topic)["body"] == "before")

                let (removed, _) = try await client.json(.delete, "/api/channels/\(channel)/members/\(bob.id)", token: alice.token)
                #expect(removed == .ok)
                _ = try await bobSocket.event("phx_close", on: topic)
                _ = try await aliceSocket.reply(to: aliceSocket.push(topic, "new_message", ["body": "after"], joinRef: "1"))
                let history = try await bobSocket.reply(to: bobSocket.push(topic, "load_history", [:], joinRef: "1"))
                #expect(history.status == "error", "no history for a removed member: \(history)")
                let (httpHistory, _) = try await client.json(.get, "/api/channels/\(channel)/messages", token: bob.token)
                #expect(httpHistory == .forbidden)
                let rejoin = try await bobSocket.reply(to: bobSocket.push(topic, "phx_join", [:], joinRef: "2"))
                #expect(rejoin.status == "error" && rejoin.response["reason"] == "not_a_member")
                // Nothing of "after" reached Bob: the next frame he gets is an answer to a heartbeat.
                let beat = bobSocket.push("phoenix", "heartbeat", [:])
                let next = try await bobSocket.next { $0.arrayValue?[3] == "message_created" || $0.arrayValue?[1] == .string(beat) }
                #expect(next.arrayValue?[1] == .string(beat), "a removed member received \(next)")
                aliceSocket.close()
                bobSocket.close()
            }
        }
    }

    @Test func twoUsersChatOverWebSocketsAndHistoryPagesBySeq() async throws {
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode { client, _ in
                let (alice, bob, channel, workspace) = try await Self.room(client)
                let topic = "channel:\(channel)"
                let bobSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(bob.token)")
                // Bob is not a member yet.
                let refused = try await bobSocket.reply(to: bobSocket.push(topic, "phx_join", [:], joinRef: "1"))
                #expect(refused.status == "error" && refused.response["reason"] == "not_a_member")
                _ = try await client.json(.post, "/api/workspaces/\(workspace)/members", token: alice.token,
                                          body: ["email": .string(try await client.json(.get, "/api/me", token: bob.token).1["user"]?["email"]?.stringValue ?? "")])
                let (joinStatus, _) = try await client.json(.post, "/api/channels/\(channel)/join", token: bob.token)
                #expect(joinStatus == .ok)
                let joined = try await bobSocket.reply(to: bobSocket.push(topic, "phx_join", [:], joinRef: "2"))
                #expect(joined.status == "ok")

                // Alice joins with the token in the join payload (as some clients send it).
                let aliceSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0")
                let aliceJoin = try await aliceSocket.reply(to: aliceSocket.push(topic, "phx_join", ["token": .string(alice.token)], joinRef: "1"))
                #expect(aliceJoin.status == "ok")

                let sent = try await aliceSocket.reply(to: aliceSocket.push(topic, "new_message",
                                                                            ["body": "hi bob", "client_msg_id": "a-1"], joinRef: "1"))
                #expect(sent.status == "ok" && sent.response["seq"] == 1)
                let received = try await bobSocket.event("message_created", on: topic)
                #expect(received["body"] == "hi bob" && received["seq"] == 1 && received["user_id"] == .string(alice.id))

                // A resend with the same client_msg_id is acknowledged with the first seq and stored once.
                let resent = try await aliceSocket.reply(to: aliceSocket.push(topic, "new_message",
                                                                              ["body": "hi bob", "client_msg_id": "a-1"], joinRef: "1"))
                #expect(resent.response["seq"] == 1 && resent.response["id"] == sent.response["id"])

                // Edits and deletes: the author only; the other user sees both.
                let messageID = sent.response["id"] ?? .null
                let edited = try await aliceSocket.reply(to: aliceSocket.push(topic, "edit_message",
                                                                              ["message_id": messageID, "body": "hi Bob!"], joinRef: "1"))
                #expect(edited.status == "ok" && edited.response["message"]?["body"] == "hi Bob!")
                let updated = try await bobSocket.event("message_updated", on: topic)
                #expect(updated["body"] == "hi Bob!" && updated["edited_at"] != .null && updated["seq"] == 1)
                let forbidden = try await bobSocket.reply(to: bobSocket.push(topic, "edit_message",
                                                                             ["message_id": messageID, "body": "mine now"], joinRef: "2"))
                #expect(forbidden.status == "error" && forbidden.response["reason"] == "forbidden")
                let deleted = try await aliceSocket.reply(to: aliceSocket.push(topic, "delete_message", ["message_id": messageID], joinRef: "1"))
                #expect(deleted.status == "ok" && deleted.response["seq"] == 1)
                #expect(try await bobSocket.event("message_deleted", on: topic)["id"] == messageID)
                let missing = try await aliceSocket.reply(to: aliceSocket.push(topic, "edit_message",
                                                                               ["message_id": messageID, "body": "again"], joinRef: "1"))
                #expect(missing.response["reason"] == "not_found")

                // Reactions: counts and who reacted, announced to the channel.
                let second = try await aliceSocket.reply(to: aliceSocket.push(topic, "new_message", ["body": "react to me"], joinRef: "1"))
                let secondID = second.response["id"] ?? .null
                _ = try await bobSocket.reply(to: bobSocket.push(topic, "add_reaction", ["message_id": secondID, "emoji": "👍"], joinRef: "2"))
                let both = try await aliceSocket.reply(to: aliceSocket.push(topic, "add_reaction", ["message_id": secondID, "emoji": "👍"], joinRef: "1"))
                #expect(both.response["reactions"]?["👍"]?["count"] == 2)
                let added = try await aliceSocket.event("reaction_added", on: topic)
                #expect(added == ["message_id": secondID, "user_id": .string(bob.id), "emoji": "👍"])
                let removed = try await bobSocket.reply(to: bobSocket.push(topic, "remove_reaction", ["message_id": secondID, "emoji": "👍"], joinRef: "2"))
                #expect(removed.response["reactions"]?["👍"]?["users"] == [.string(alice.id)])

                // Threads: replies carry the root and reach thread subscribers.
                let thread = "thread:\(secondID.stringValue ?? "")"
                let followed = try await bobSocket.reply(to: bobSocket.push(thread, "phx_join", ["channel_id": .string(channel)], joinRef: "3"))
                #expect(followed.status == "ok")
                let threadReply = try await aliceSocket.reply(to: aliceSocket.push(topic, "new_message",
                                                                                   ["body": "in thread", "thread_root_id": secondID], joinRef: "1"))
                #expect(threadReply.status == "ok")
                let pushed = try await bobSocket.event("thread_reply", on: thread)
                #expect(pushed["thread_root_id"] == secondID && pushed["body"] == "in thread")
                let noRoot = try await aliceSocket.reply(to: aliceSocket.push(topic, "new_message",
                                                                              ["body": "x", "thread_root_id": "no-such-message"], joinRef: "1"))
                #expect(noRoot.response["reason"] == "not_found")

                // Typing reaches the other user.
                _ = try await bobSocket.reply(to: bobSocket.push(topic, "typing_start", [:], joinRef: "2"))
                let typing = try await aliceSocket.event("typing", on: topic)
                #expect(typing == ["user_id": .string(bob.id), "typing": true])

                // Over the per-socket limit (30 burst, 10/s) requests are answered rate_limited;
                // a client that waits gets through.
                var rateLimited = 0
                for n in 4...30 {
                    while true {
                        let answer = try await bobSocket.reply(to: bobSocket.push(topic, "new_message", ["body": .string("msg \(n)")], joinRef: "2"))
                        if answer.status == "ok" { break }
                        #expect(answer.response["reason"] == "rate_limited")
                        rateLimited += 1
                        try await Task.sleep(for: .milliseconds(150))
                    }
                }
                // Read receipts: recorded (never backwards), announced, and counted in unread.
                let read = try await aliceSocket.reply(to: aliceSocket.push(topic, "mark_read", ["seq": 20], joinRef: "1"))
                #expect(read.response == ["seq": 20, "unread": 10])
                let receipt = try await bobSocket.event("read_receipt", on: topic)
                #expect(receipt == ["user_id": .string(alice.id), "seq": 20])
                let backwards = try await aliceSocket.reply(to: aliceSocket.push(topic, "mark_read", ["seq": 3], joinRef: "1"))
                #expect(backwards.response["seq"] == 20)
                let rejoin = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(alice.token)")
                let rejoined = try await rejoin.reply(to: rejoin.push(topic, "phx_join", [:], joinRef: "9"))
                #expect(rejoined.response["last_read_seq"] == 20 && rejoined.response["unread"] == 10)
                rejoin.close()

                let page = try await aliceSocket.reply(to: aliceSocket.push(topic, "load_history", ["before": 11, "limit": 5], joinRef: "1"))
                #expect(page.response["messages"]?.arrayValue?.compactMap { $0["seq"]?.intValue } == [6, 7, 8, 9, 10])
                let (_, http) = try await client.json(.get, "/api/channels/\(channel)/messages?after=25&limit=3", token: bob.token)
                #expect(http["messages"]?.arrayValue?.compactMap { $0["seq"]?.intValue } == [26, 27, 28])

                let metrics = try await client.execute(uri: "/metrics", method: .get) { response in
                    String(decoding: response.body.readableBytesView, as: UTF8.self)
                }
                // 30 messages and one acknowledged resend; refusals counted.
                #expect(metrics.contains("parley_messages_accepted_total 31"))
                #expect(metrics.contains("parley_ws_error_replies_total \(4 + rateLimited)"))
                #expect(metrics.contains("parley_ws_joins_total 3"))
                #expect(metrics.contains("parley_broadcast_deliveries_total"))
                #expect(metrics.contains("parley_buffer_lag_milliseconds"))
                aliceSocket.close()
                bobSocket.close()
            }
        }
    }

    @Test func rejoiningWithLastSeqCatchesUpWithoutGapOrDuplicate() async throws {
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode { client, _ in
                let (alice, _, channel, _) = try await Self.room(client)
                let topic = "channel:\(channel)"
                // More than the socket's outbox holds (512), and more than the recent cache (100).
                for n in 1...1200 {
                    _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token,
                                              body: ["body": .string("m\(n)")])
                }
                let socket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(alice.token)")
                let joined = try await socket.reply(to: socket.push(topic, "phx_join", ["last_seq": 4], joinRef: "1"))
                #expect(joined.status == "ok" && joined.response["last_seq"] == 1200)
                _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token, body: ["body": "live"])
                var seqs: [Int64] = []
                while seqs.last != 1201 {
                    seqs.append(try await socket.event("message_created", on: topic)["seq"]?.intValue ?? -1)
                }
                #expect(seqs == Array(5...1201))
                socket.close()
            }
        }
    }

    @Test func badInputGetsErrorRepliesAndTheSocketStaysUp() async throws {
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode { client, _ in
                let (alice, _, channel, _) = try await Self.room(client)
                let topic = "channel:\(channel)"
                let socket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(alice.token)")
                #expect(try await socket.reply(to: socket.push(topic, "phx_join", [:], joinRef: "1")).status == "ok")
                socket.sendRaw("[not json")
                let malformed = try await socket.next { $0.arrayValue?[2] == "phoenix" && $0.arrayValue?[3] == "phx_reply" }
                #expect(malformed.arrayValue?[4]["response"]?["reason"] == "invalid_payload")
                let big = try await socket.reply(to: socket.push(topic, "new_message", ["body": .string(String(repeating: "x", count: 5000))], joinRef: "1"))
                #expect(big.status == "error" && big.response["reason"] == "too_large")
                let unknown = try await socket.reply(to: socket.push(topic, "dance", [:], joinRef: "1"))
                #expect(unknown.response["reason"] == "unknown_event")
                let invalid = try await socket.reply(to: socket.push(topic, "new_message", ["body": 42], joinRef: "1"))
                #expect(invalid.response["reason"] == "invalid_payload")
                let unjoined = try await socket.reply(to: socket.push("channel:elsewhere", "new_message", ["body": "x"]))
                #expect(unjoined.response["reason"] == "unmatched_topic")
                let badToken = PhoenixSocket(port: client.port!, query: "vsn=2.0.0")
                let refused = try await badToken.reply(to: badToken.push(topic, "phx_join", ["token": "forged"], joinRef: "1"))
                #expect(refused.response["reason"] == "unauthorized")
                // A burst beyond the per-socket limit (30, refilled at 10/s) is answered rate_limited.
                let burst = (0..<45).map { _ in socket.push(topic, "typing_start", [:], joinRef: "1") }
                var limited = 0
                for ref in burst where try await socket.reply(to: ref).response["reason"] == "rate_limited" { limited += 1 }
                #expect(limited >= 10, "\(limited) of 45 were limited")
                try await Task.sleep(for: .milliseconds(300))

                // Still up: a heartbeat and a message go through.
                #expect(try await socket.reply(to: socket.push("phoenix", "heartbeat", [:])).status == "ok")
                #expect(try await socket.reply(to: socket.push(topic, "new_message", ["body": "still here"], joinRef: "1")).status == "ok")
                let (status, error) = try await client.json(.post, "/api/signup", raw: "{nope")
                #expect(status == .badRequest && error["error"]?["code"] == "invalid_payload")
                let (unauthorized, _) = try await client.json(.get, "/api/me", token: "forged")
                #expect(unauthorized == .unauthorized)
                socket.close()
                badToken.close()
            }
        }
    }
}

@Suite("A client that shuts its side")
struct HalfClosedClientTests {
    /// A client that sends FIN without a close frame (the server allows half-closed
    /// connections): the socket ends, its joins are left, and the node forgets it.
    @Test func isClosedAndForgotten() async throws {
        try await withTimeout(.seconds(30)) {
            try await NodeHarness.withNode { client, _ in
                let (alice, _, channel, _) = try await ChatTests.room(client)
                let socket = try await StalledWebSocket.open(port: client.port!, path: "/socket/websocket?vsn=2.0.0&token=\(alice.token)")
                try socket.sendText(#"["1","1","channel:\#(channel)","phx_join",{}]"#)
                #expect(await TestServices.eventually { (try? await client.gauge("parley_ws_connections")) == 1 })
                socket.shutdownWrite()
                #expect(await TestServices.eventually { (try? await client.gauge("parley_ws_connections")) == 0 }, "the half-closed socket is closed")
                socket.close()
            }
        }
    }
}

@Suite("Refused upgrades")
struct RefusedUpgradeTests {
    /// Every upgrade the node does not take gets an answer with a stable code and the
    /// connection closed — never a dropped connection (swift-nio's upgrader keeps the request
    /// of a refused upgrade, so the router cannot serve it).
    @Test func areAnsweredWithTheirCode() async throws {
        try await withTimeout(.seconds(30)) {
            try await NodeHarness.withNode { client, _ in
                let port = client.port!
                let websocket = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
                let cases: [(String, String, String)] = [
                    ("GET /socket/websocket?vsn=2.0.0&token=forged HTTP/1.1\r\nHost: x\r\n\(websocket)", "403", "unauthorized"),
                    ("GET /socket/websocket?vsn=9.9.9 HTTP/1.1\r\nHost: x\r\n\(websocket)", "400", "invalid_payload"),
                    ("GET /healthz HTTP/1.1\r\nHost: x\r\n\(websocket)", "404", "not_found"),
                    ("GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__", "400", "invalid_payload"),
                ]
                for (request, status, code) in cases {
                    let answer = try await StalledWebSocket.exchange(port: port, request + "\r\n\r\n")
                    #expect(answer.hasPrefix("HTTP/1.1 \(status)"), "\(request.prefix(40)): \(answer.prefix(80))")
                    #expect(answer.contains(#""code":"\#(code)""#), "\(request.prefix(40)): \(answer)")
                }
                // The same connection path still serves plain requests.
                #expect(try await StalledWebSocket.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").hasPrefix("HTTP/1.1 200"))
            }
        }
    }
}

@Suite("A client too slow to read")
struct SlowClientTests {
    /// A raw WebSocket client that joins and then never reads: once more than the outbox's
    /// capacity is waiting, the node disconnects it; the reading client gets everything.
    @Test func isDisconnectedAndOthersGetEveryMessage() async throws {
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode(configure: { $0.outboxCapacity = 8 }) { client, _ in
                let (alice, _, channel, _) = try await ChatTests.room(client)
                let topic = "channel:\(channel)"
                let reader = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(alice.token)")
                #expect(try await reader.reply(to: reader.push(topic, "phx_join", [:], joinRef: "1")).status == "ok")
                let stalled = try await StalledWebSocket.open(port: client.port!, path: "/socket/websocket?vsn=2.0.0&token=\(alice.token)")
                try stalled.sendText(#"["1","1","\#(topic)","phx_join",{}]"#)
                #expect(await TestServices.eventually { (try? await client.gauge("parley_ws_connections")) == 2 })
                let body = JSONValue.string(String(repeating: "x", count: 3900))
                // The kernel takes up to a few MB for a socket that does not read before the
                // node sees anything waiting: send well beyond that.
                // Ten writers at once: the seqs still run 1...1500 on the channel.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<10 {
                        group.addTask {
                            for _ in 0..<150 {
                                _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token, body: ["body": body])
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                #expect(await TestServices.eventually { (try? await client.gauge("parley_ws_connections")) == 1 }, "the stalled socket is closed")
                #expect(try await client.gauge("parley_broadcast_dropped_total") >= 1)
                var seqs: [Int64] = []
                while seqs.count < 1500 { seqs.append(try await reader.event("message_created", on: topic)["seq"]?.intValue ?? -1) }
                #expect(seqs == Array(1...1500))
                stalled.close()
                reader.close()
            }
        }
    }
}

/// A WebSocket client on a plain socket with a tiny receive buffer that, after its upgrade,
/// sends what it is told and reads nothing.
final class StalledWebSocket: @unchecked Sendable {
    private let fd: Int32

    struct Failure: Error { let step: String }

    init(port: Int, path: String) throws {
        fd = try Self.connected(port: port)
        try send(Array(("GET \(path) HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8))
        var response: [UInt8] = []
        var byte: UInt8 = 0
        while !response.suffix(4).elementsEqual(Array("\r\n\r\n".utf8)) {
            guard recv(fd, &byte, 1, 0) == 1 else { throw Failure(step: "upgrade response") }
            response.append(byte)
        }
        guard String(decoding: response, as: UTF8.self).hasPrefix("HTTP/1.1 101") else { throw Failure(step: "upgrade refused") }
    }

    /// Connects and upgrades on a thread of its own: the calls block, and a blocked
    /// cooperative thread starves the node under test (and every other test of the process).
    static func open(port: Int, path: String) async throws -> StalledWebSocket {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try StalledWebSocket(port: port, path: path) }) }
        }
    }

    /// A socket with a small receive buffer, connected to the node.
    private static func connected(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var size: Int32 = 2048
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(step: "connect") }
        return fd
    }

    /// Sends `request` as it is and returns all the node answers until it closes the
    /// connection (2 s at most), on a thread of its own (the calls block).
    static func exchange(port: Int, _ request: String) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try blockingExchange(port: port, request) }) }
        }
    }

    private static func blockingExchange(port: Int, _ request: String) throws -> String {
        let fd = try connected(port: port)
        defer { Glibc.close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw Failure(step: "send")
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            guard count > 0 else { break }
            answer += chunk.prefix(count)
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// One masked text frame (an all-zero mask: the payload goes as it is).
    func sendText(_ text: String) throws {
        let payload = Array(text.utf8)
        precondition(payload.count < 126)
        try send([0x81, 0x80 | UInt8(payload.count), 0, 0, 0, 0] + payload)
    }

    private func send(_ bytes: [UInt8]) throws {
        guard bytes.withUnsafeBytes({ Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw Failure(step: "send")
        }
    }

    func close() { Glibc.close(fd) }

    /// Shuts the client's sending side only (a FIN; the connection is half-closed).
    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
}
