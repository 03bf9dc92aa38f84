import ParleyCore
import ParleyRuntime
import Testing

/// A directory where everyone is a member of every channel.
struct OpenDirectory: Directory {
    func createUser(email: String, displayName: String, passwordHash: String) async throws -> UserRecord { fatalError("unused") }
    func user(email: String) async throws -> UserRecord? { nil }
    func user(id: String) async throws -> UserRecord? { nil }
    func createWorkspace(name: String, slug: String, owner: String) async throws -> WorkspaceRecord { fatalError("unused") }
    func addWorkspaceMember(workspace: String, user: String) async throws {}
    func isWorkspaceMember(workspace: String, user: String) async throws -> Bool { true }
    func workspaceRole(workspace: String, user: String) async throws -> String? { "member" }
    func createChannel(workspace: String, name: String, kind: ChannelRecord.Kind, creator: String) async throws -> ChannelRecord {
        fatalError("unused")
    }
    func channel(id: String) async throws -> ChannelRecord? { nil }
    func channels(workspace: String, visibleTo user: String) async throws -> [ChannelRecord] { [] }
    func joinChannel(_ channel: String, user: String) async throws {}
    func leaveChannel(_ channel: String, user: String) async throws {}
    func channelMembers(_ channel: String) async throws -> Set<String> { ["alice"] }
    func isChannelMember(_ channel: String, user: String) async throws -> Bool { user == "alice" }
    func lastRead(_ channel: String, user: String) async throws -> Int64 { 0 }
}

/// The `message_created` seqs a recording socket received on `topic`, in order.
func createdSeqs(_ socket: RecordingSocket) -> [Int64] {
    socket.messages.compactMap { message -> Int64? in
        guard case .text(let text) = message, text.contains("message_created"),
              let range = text.range(of: #""seq":"#) else { return nil }
        return Int64(text[range.upperBound...].prefix { $0.isNumber })
    }
}

@Suite("Channel router")
struct ChannelRouterTests {
    @Test func aLostLeaseStopsTheServerAndTheNextWriteTakesItBack() async throws {
        let cluster = MemoryCluster()
        let node = try await cluster.node("n1")
        defer { Task { await node.stop() } }
        #expect(await node.ready())
        let socket = RecordingSocket(codec: .v2)
        try await node.bus.feeds.open("c1").attach(socket, after: 0)
        #expect(try await node.router.call(.post(body: "one", clientMessageID: nil, threadRootID: nil), channel: "c1", user: "alice")
                .seq == 1)
        let holder = node.membership.identity.description
        #expect(try await cluster.leases.holder(of: .channel("c1")) == holder)
        // Another holder takes the lease (as after a netsplit): the server stops at its next renewal.
        try await cluster.leases.release(.channel("c1"), holder: holder)
        _ = try await cluster.leases.acquire(.channel("c1"), holder: "other/9", ttl: .milliseconds(300))
        #expect(await eventually { await node.router.runningServer(for: "c1") == nil }, "the server stopped")
        // The write waits until the other holder's lease lapses (it is not live), then the
        // channel starts here again under a new fence and continues its seq.
        #expect(try await node.router.call(.post(body: "two", clientMessageID: nil, threadRootID: nil), channel: "c1", user: "alice")
                .seq == 2)
        #expect(await eventually { createdSeqs(socket) == [1, 2] }, "the edge's socket kept receiving, in order, once each")
    }

    @Test func nothingStartsForAStrangerAndTheNumberOfServersIsBounded() async throws {
        var settings = MemoryCluster().settings
        settings.maximumServers = 3
        let cluster = MemoryCluster(settings: settings)
        let node = try await cluster.node("n1")
        defer { Task { await node.stop() } }
        for n in 0..<50 {
            await #expect(throws: ChannelError.notAMember) {
                _ = try await node.router.call(.typing(true), channel: "random-\(n)", user: "mallory")
            }
        }
        #expect(await node.router.runningCount == 0, "no server for a non-member")
        #expect(try await cluster.leases.holder(of: .channel("random-1")) == nil, "no lease taken for a non-member")
        for n in 0..<3 { _ = try await node.router.server(for: "c\(n)", member: "alice") }
        await #expect(throws: ChannelError.self) { _ = try await node.router.server(for: "c9", member: "alice") }
        #expect(await node.router.runningCount == 3)
    }

    /// Issue 14.8: a typing indicator nobody renews ends by itself (the router's tick).
    @Test func typingEndsWhenNotRenewed() async throws {
        var settings = ChannelRouter.Settings(leaseTTL: .seconds(2), tick: .milliseconds(20))
        settings.typingTimeout = .milliseconds(100)
        let node = try await MemoryCluster(settings: settings).node("n1")
        defer { Task { await node.stop() } }
        let socket = RecordingSocket(codec: .v2)
        try await node.bus.feeds.open("c1").attach(socket, after: nil)
        _ = try await node.router.call(.typing(true), channel: "c1", user: "alice")
        #expect(await eventually {
            socket.messages.contains { if case .text(let text) = $0 { text.contains(#""typing":false"#) } else { false } }
        })
    }

    /// Issue 15.3/15.4: writes made on any node reach the channel's one owner, and every node's
    /// subscribers receive every message once, in seq order.
    @Test func writesFromEveryNodeReachTheOwnerAndEveryNodesSubscribers() async throws {
        let cluster = MemoryCluster()
        var started: [MemoryNode] = []
        for name in ["a", "b", "c"] { started.append(try await cluster.node(name)) }
        let nodes = started
        defer { Task { for node in nodes { await node.stop() } } }
        for node in nodes { #expect(await node.ready()) }
        #expect(await eventually { nodes.allSatisfy { $0.membership.ring.members == ["a", "b", "c"] } })
        let sockets = nodes.map { _ in RecordingSocket(codec: .v2, capacity: 1000) }
        for (node, socket) in zip(nodes, sockets) { try await node.bus.feeds.open("c1").attach(socket, after: 0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, node) in nodes.enumerated() {
                group.addTask {
                    for n in 0..<20 {
                        _ = try await node.router.call(.post(body: "m\(index)-\(n)", clientMessageID: "\(index)-\(n)", threadRootID: nil),
                                                       channel: "c1", user: "alice")
                    }
                }
            }
            try await group.waitForAll()
        }
        let owners = await nodes.asyncFilter { await $0.router.runningServer(for: "c1") != nil }
        #expect(owners.count == 1, "one owner")
        #expect(await eventually { sockets.allSatisfy { createdSeqs($0) == Array(1...60) } })
        let forwarded = nodes.map { $0.router.stats().forwarded }.reduce(0, +)
        #expect(forwarded == 40, "the two other nodes' writes were forwarded")
    }

    /// Issue 15.5: a node joining takes over the channels the ring now gives it, by handoff;
    /// writes during the move wait and succeed, seqs continue without a gap.
    @Test func aJoiningNodeTakesItsChannelsByHandoff() async throws {
        let cluster = MemoryCluster(settings: .handoffTests)
        let first = try await cluster.node("a")
        #expect(await first.ready())
        let channels = (0..<40).map { "c\($0)" }
        for channel in channels {
            _ = try await first.router.call(.post(body: "before", clientMessageID: "\(channel)-0", threadRootID: nil), channel: channel, user: "alice")
        }
        #expect(await first.router.runningCount == 40)
        let second = try await cluster.node("b")
        defer { Task { await first.stop(); await second.stop() } }
        #expect(await second.ready())
        let moving = channels.filter { HashRing(members: ["a", "b"]).owner(of: "channel:\($0)") == "b" }
        #expect(!moving.isEmpty)
        #expect(await eventually { await first.router.runningCount == 40 - moving.count })
        #expect(await eventually { await second.router.runningCount == moving.count }, "taken on the handoff notice")
        for channel in channels {
            let message = try await first.router.call(.post(body: "after", clientMessageID: "\(channel)-1", threadRootID: nil),
                                                      channel: channel, user: "alice")
            #expect(message.seq == 2)
        }
        #expect(first.router.ownership.stats().handoffs == moving.count)
    }
}

extension ChannelRouterTests {
    /// Issue 16.3: a draining node leaves every ring but stays live, hands each channel it owns
    /// to the node the ring now prefers (which takes it on the notice and continues the seq),
    /// starts nothing more, and its own clients' writes go to the new owners.
    @Test func aDrainingNodeHandsEveryChannelOffAndStartsNothing() async throws {
        let cluster = MemoryCluster(settings: .handoffTests)
        let leaving = try await cluster.node("a")
        let staying = try await cluster.node("b")
        defer { Task { await leaving.stop(); await staying.stop() } }
        #expect(await leaving.ready())
        #expect(await staying.ready())
        #expect(await eventually { leaving.membership.ring.members == ["a", "b"] && staying.membership.ring.members == ["a", "b"] })
        let channels = (0..<30).map { "d\($0)" }.filter { HashRing(members: ["a", "b"]).owner(of: "channel:\($0)") == "a" }
        #expect(channels.count > 5)
        for channel in channels {
            _ = try await leaving.router.call(.post(body: "before", clientMessageID: "\(channel)-0", threadRootID: nil), channel: channel, user: "alice")
        }
        #expect(leaving.router.ownership.owned.count == channels.count)

        await leaving.membership.startDraining()
        await leaving.router.drain()
        #expect(leaving.router.ownership.owned.isEmpty)
        #expect(await leaving.router.runningCount == 0)
        #expect(leaving.membership.ring.members == ["b"], "the draining node's own ring leaves it out")
        #expect(await eventually { staying.membership.ring.members == ["b"] }, "so does every other node's")
        #expect(staying.membership.isLive(leaving.membership.identity.description), "while it stays live")
        let taken = await eventually { await staying.router.runningCount == channels.count }
        let running = await staying.router.runningCount
        #expect(taken, "taken on the handoff notices: \(running) of \(channels.count)")
        #expect(leaving.router.ownership.stats().handoffs == channels.count)
        for channel in channels {
            let reply = try await leaving.router.call(.post(body: "after", clientMessageID: "\(channel)-1", threadRootID: nil),
                                                      channel: channel, user: "alice")
            #expect(reply.seq == 2, "the new owner continues the seq")
        }
        #expect(await leaving.router.runningCount == 0, "a draining node starts no channel server")
        #expect(leaving.router.stats().forwarded >= channels.count)
    }
}

extension ChannelRouter.Settings {
    /// For tests of planned handoffs, which must not turn into lapsed leases when the test
    /// process is starved of CPU for a second or two (as on a CI machine running every suite
    /// at once): a lease provable for 8 s less a 1.6 s margin.
    static let handoffTests = ChannelRouter.Settings(leaseTTL: .seconds(8), tick: .milliseconds(50))
}

extension ChannelReply {
    var seq: Int64? { if case .message(let message) = self { message.seq } else { nil } }
}

extension Array where Element: Sendable {
    func asyncFilter(_ predicate: (Element) async -> Bool) async -> [Element] {
        var kept: [Element] = []
        for element in self where await predicate(element) { kept.append(element) }
        return kept
    }
}
