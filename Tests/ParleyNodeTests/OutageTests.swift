import Foundation
import HummingbirdTesting
import ParleyCore
import ParleyGateway
import ParleyTestSupport
import Testing

@Suite("One node while PostgreSQL is away")
struct OutageTests {
    /// PostgreSQL stops mid-run: chat goes on over the sockets (acknowledged = in the Redis
    /// log), and once PostgreSQL is back every message is in it, once, in `seq` order.
    @Test func messagesAreAcknowledgedAndDeliveredWhilePostgresIsDown() async throws {
        let postgres = try await PrivatePostgres()
        try await withTimeout(.seconds(120)) {
            try await NodeHarness.withNode(databaseURL: postgres.url) { client, node, backends in
                let (alice, bob, channel, workspace) = try await ChatTests.room(client)
                let topic = "channel:\(channel)"
                try await client.addMember(bob, to: workspace, by: alice)
                _ = try await client.json(.post, "/api/channels/\(channel)/join", token: bob.token)
                let aliceSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(alice.token)")
                let bobSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(bob.token)")
                #expect(try await aliceSocket.reply(to: aliceSocket.push(topic, "phx_join", [:], joinRef: "1")).status == "ok")
                #expect(try await bobSocket.reply(to: bobSocket.push(topic, "phx_join", [:], joinRef: "1")).status == "ok")

                func send(_ n: Int) async throws {
                    let ack = try await aliceSocket.reply(to: aliceSocket.push(topic, "new_message",
                                                                               ["body": .string("m\(n)"), "client_msg_id": .string("c\(n)")],
                                                                               joinRef: "1"))
                    #expect(ack.status == "ok" && ack.response["seq"] == .int(Int64(n)), "message \(n): \(ack)")
                    let delivered = try await bobSocket.event("message_created", on: topic)
                    #expect(delivered["seq"] == .int(Int64(n)) && delivered["body"] == .string("m\(n)"))
                    // Stay under the per-socket rate limit (10/s).
                    try await Task.sleep(for: .milliseconds(110))
                }
                for n in 1...5 { try await send(n) }
                #expect(await TestServices.eventually { await node.buffer.stats().rows == 5 })

                try await postgres.stop()
                for n in 6...25 { try await send(n) }
                #expect(await TestServices.eventually { await node.buffer.stats().retries > 0 })
                #expect(await node.buffer.stats().pending == 20)

                try await postgres.start()
                #expect(await TestServices.eventually(within: .seconds(30)) { await node.buffer.stats().pending == 0 })
                let seqs = try await backends.postgres.query(
                    "SELECT seq FROM messages WHERE channel_id = $1::uuid ORDER BY seq", channel)
                    .map { try $0.decode(Int64.self, at: 0) }
                #expect(seqs == Array(1...25), "every acknowledged message stored once, no gap")
                aliceSocket.close()
                bobSocket.close()
            }
        }
    }
}
