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
    func createChannel(workspace: String, name: String, kind: ChannelRecord.Kind, creator: String) async throws -> ChannelRecord {
        fatalError("unused")
    }
    func channel(id: String) async throws -> ChannelRecord? { nil }
    func channels(workspace: String) async throws -> [ChannelRecord] { [] }
    func joinChannel(_ channel: String, user: String) async throws {}
    func leaveChannel(_ channel: String, user: String) async throws {}
    func channelMembers(_ channel: String) async throws -> Set<String> { ["alice"] }
    func markRead(_ channel: String, user: String, seq: Int64) async throws -> Int64 { seq }
    func lastRead(_ channel: String, user: String) async throws -> Int64 { 0 }
}

@Suite("Channel router")
struct ChannelRouterTests {
    @Test func aLostLeaseStopsTheServerAndTellsItsSockets() async throws {
        let leases = MemoryLeaseStore()
        let log = MemoryMessageLog(leases: leases)
        let store = MemoryMessageStore()
        let broadcaster = Broadcaster()
        let socket = RecordingSocket(codec: .v2)
        broadcaster.subscribe(socket, to: "channel:c1")
        let router = ChannelRouter(identity: NodeIdentity(name: "n", incarnation: "1"), leases: leases, log: log, store: store,
                                   directory: OpenDirectory(), sink: MessageBuffer(store: store, log: log), publisher: broadcaster,
                                   settings: .init(leaseTTL: .milliseconds(300)))
        let first = try await router.server(for: "c1")
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
            let again = try await router.server(for: "c1")
            #expect(try await again.post(userID: "alice", body: "two", clientMessageID: nil).seq == 2)
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
