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

/// A router on memory adapters with a socket subscribed to `channel:c1`.
struct RouterFixture {
    let leases = MemoryLeaseStore()
    let broadcaster = Broadcaster()
    let socket = RecordingSocket(codec: .v2)
    let router: ChannelRouter

    init(_ settings: ChannelRouter.Settings) {
        let log = MemoryMessageLog(leases: leases)
        let store = MemoryMessageStore()
        broadcaster.subscribe(socket, to: "channel:c1")
        router = ChannelRouter(identity: NodeIdentity(name: "n", incarnation: "1"), leases: leases, log: log, store: store,
                               directory: OpenDirectory(), sink: MessageBuffer(store: store, log: log), publisher: broadcaster,
                               settings: settings)
    }
}

@Suite("Channel router")
struct ChannelRouterTests {
    @Test func aLostLeaseStopsTheServerAndTellsItsSockets() async throws {
        let fixture = RouterFixture(.init(leaseTTL: .milliseconds(300)))
        let (leases, socket, router) = (fixture.leases, fixture.socket, fixture.router)
        let first = try await router.server(for: "c1", member: "alice")
        #expect(try await first.post(userID: "alice", body: "one", clientMessageID: nil).seq == 1)
        #expect(try await leases.holder(of: .channel("c1")) == "n/1")
        // Another holder takes the lease (as after a netsplit).
        try await leases.release(.channel("c1"), holder: "n/1")
        _ = try await leases.acquire(.channel("c1"), holder: "other/9", ttl: .milliseconds(200))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await router.run() }
            let told = await Self.eventually { socket.messages.contains(.text(#"[null,null,"channel:c1","phx_error",{}]"#)) }
            #expect(told)
            #expect(await router.runningServer(for: "c1") == nil, "the server stopped")
            // Once the other holder's lease lapses, the channel starts again here and continues its seq.
            try await Task.sleep(for: .milliseconds(250))
            let again = try await router.server(for: "c1", member: "alice")
            #expect(try await again.post(userID: "alice", body: "two", clientMessageID: nil).seq == 2)
            #expect(!socket.messages.contains { "\($0)".contains("two") },
                    "an errored channel's socket receives nothing until it rejoins (as in Phoenix)")
            group.cancelAll()
        }
    }

    @Test func nothingStartsForAStrangerAndTheNumberOfServersIsBounded() async throws {
        let leases = MemoryLeaseStore()
        let log = MemoryMessageLog(leases: leases)
        let store = MemoryMessageStore()
        let router = ChannelRouter(identity: NodeIdentity(name: "n", incarnation: "1"), leases: leases, log: log, store: store,
                                   directory: OpenDirectory(), sink: MessageBuffer(store: store, log: log), publisher: Broadcaster(),
                                   settings: .init(maximumServers: 3))
        for n in 0..<50 {
            await #expect(throws: ChannelError.notAMember) { _ = try await router.server(for: "random-\(n)", member: "mallory") }
        }
        #expect(await router.runningCount == 0, "no server for a non-member")
        #expect(try await leases.holder(of: .channel("random-1")) == nil, "no lease taken for a non-member")
        for n in 0..<3 { _ = try await router.server(for: "c\(n)", member: "alice") }
        await #expect(throws: ChannelError.self) { _ = try await router.server(for: "c9", member: "alice") }
        #expect(await router.runningCount == 3)
    }

    /// Issue 14.8: a typing indicator nobody renews ends by itself (the router's tick).
    @Test func typingEndsWhenNotRenewed() async throws {
        var settings = ChannelRouter.Settings(tick: .milliseconds(20))
        settings.typingTimeout = .milliseconds(100)
        let fixture = RouterFixture(settings)
        let (socket, router) = (fixture.socket, fixture.router)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await router.run() }
            await try router.server(for: "c1", member: "alice").setTyping("alice", true)
            #expect(await Self.eventually {
                socket.messages.contains { if case .text(let text) = $0 { text.contains(#""typing":false"#) } else { false } }
            })
            group.cancelAll()
        }
    }

    static func eventually(_ condition: () async -> Bool) async -> Bool {
        for _ in 0..<100 {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return await condition()
    }
}
