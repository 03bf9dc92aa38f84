import Foundation
import HummingbirdTesting
import ParleyCore
import Testing

@Suite("Workspace presence over WebSockets")
struct WorkspacePresenceTests {
    @Test func joinsStatusAndLeavesReachTheOtherMembers() async throws {
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode { client, _ in
                let (alice, bob, _, workspace) = try await ChatTests.room(client)
                try await client.addMember(bob, to: workspace, by: alice)
                let topic = "workspace:\(workspace)"
                let aliceSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(alice.token)")
                #expect(try await aliceSocket.reply(to: aliceSocket.push(topic, "phx_join", [:], joinRef: "1")).status == "ok")
                // As in Phoenix (track, then push the list): the state includes the joiner itself,
                // and its own join's diff is broadcast too (before or after the state).
                let ownState = try await aliceSocket.event("presence_state", on: topic)
                #expect(ownState.objectValue?.keys.sorted() == [alice.id], "\(ownState)")
                let ownJoin = try await aliceSocket.event("presence_diff", on: topic)
                #expect(ownJoin["joins"]?[alice.id]?["metas"]?.arrayValue?.first?["status"] == "online")

                let bobSocket = PhoenixSocket(port: client.port!, query: "vsn=1.0.0&token=\(bob.token)")
                let bobJoin = bobSocket.push(topic, "phx_join", [:], joinRef: "1")
                #expect(try await bobSocket.reply(to: bobJoin).status == "ok")
                let state = try await bobSocket.event("presence_state", on: topic)
                #expect(state[alice.id] != nil, "bob (vsn 1.0.0) sees alice online: \(state)")
                let bobArrived = try await aliceSocket.event("presence_diff", on: topic)
                #expect(bobArrived["joins"]?[bob.id] != nil)

                #expect(try await bobSocket.reply(to: bobSocket.push(topic, "set_status", ["status": "dnd", "text": "focus"], joinRef: "1")).status == "ok")
                let dnd = try await aliceSocket.event("presence_diff", on: topic)
                #expect(dnd["joins"]?[bob.id]?["metas"]?.arrayValue?.first?["custom_status"] == "dnd")
                #expect(dnd["leaves"]?[bob.id] != nil)
                let invalid = try await bobSocket.reply(to: bobSocket.push(topic, "set_status", ["status": "asleep"], joinRef: "1"))
                #expect(invalid.response["reason"] == "invalid_payload")

                // Workspace-wide events reach the workspace's sockets.
                _ = try await client.json(.post, "/api/workspaces/\(workspace)/channels", token: alice.token, body: ["name": "random"])
                let created = try await bobSocket.event("channel_created", on: topic)
                #expect(created["channel"]?["name"] == "random")

                bobSocket.close()
                let gone = try await aliceSocket.event("presence_diff", on: topic)
                #expect(gone["leaves"]?[bob.id] != nil && gone["joins"] == [:])
                aliceSocket.close()
            }
        }
    }

    /// A client that vanished without closing: its socket is closed after the socket
    /// timeout and its presence leaves; a client that heartbeats stays.
    @Test func aSilentSocketTimesOutAndItsMemberGoesOffline() async throws {
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode(configure: { $0.socketTimeout = .seconds(1) }) { client, _ in
                let (alice, bob, _, workspace) = try await ChatTests.room(client)
                try await client.addMember(bob, to: workspace, by: alice)
                let topic = "workspace:\(workspace)"
                let aliceSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(alice.token)")
                #expect(try await aliceSocket.reply(to: aliceSocket.push(topic, "phx_join", [:], joinRef: "1")).status == "ok")
                let bobSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(bob.token)")
                #expect(try await bobSocket.reply(to: bobSocket.push(topic, "phx_join", [:], joinRef: "1")).status == "ok")
                _ = try await aliceSocket.next { $0.arrayValue?[4]["joins"]?[bob.id] != nil }
                // Alice heartbeats every 300 ms; Bob says nothing more.
                let heartbeats = Task {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(300))
                        aliceSocket.push("phoenix", "heartbeat", [:])
                    }
                }
                let gone = try await aliceSocket.next { $0.arrayValue?[3] == "presence_diff" && $0.arrayValue?[4]["leaves"]?[bob.id] != nil }
                #expect(gone.arrayValue?[4]["joins"] == [:])
                await #expect(throws: PhoenixSocket.SocketClosed.self) { _ = try await bobSocket.next { _ in false } }
                let metrics = try await client.execute(uri: "/metrics", method: .get) { String(decoding: $0.body.readableBytesView, as: UTF8.self) }
                #expect(metrics.contains("parley_ws_timeouts_total 1"))
                heartbeats.cancel()
                aliceSocket.close()
            }
        }
    }
}
