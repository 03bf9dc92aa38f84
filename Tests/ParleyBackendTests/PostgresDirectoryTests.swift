import ParleyCore
import ParleyPostgres
import ParleyTestSupport
import Testing

@Suite("Directory in PostgreSQL")
struct PostgresDirectoryTests {
    @Test func usersWorkspacesChannelsAndMembership() async throws {
        try await TestServices.withSchema { postgres, _ in
            try await PostgresMigrator(client: postgres).migrate()
            let directory = PostgresDirectory(client: postgres)
            let alice = try await directory.createUser(email: "Alice@Example.com", displayName: "Alice", passwordHash: "h1")
            let bob = try await directory.createUser(email: "bob@example.com", displayName: "Bob", passwordHash: "h2")
            await #expect(throws: DirectoryError.conflict("email alice@example.com")) {
                _ = try await directory.createUser(email: "alice@example.com", displayName: "Again", passwordHash: "h")
            }
            #expect(try await directory.user(email: "ALICE@example.com") == alice)
            #expect(try await directory.user(id: bob.id) == bob)
            #expect(try await directory.user(id: "not-a-uuid") == nil)

            let workspace = try await directory.createWorkspace(name: "Acme", slug: "acme", owner: alice.id)
            #expect(try await directory.isWorkspaceMember(workspace: workspace.id, user: alice.id))
            #expect(try await !directory.isWorkspaceMember(workspace: workspace.id, user: bob.id))
            let general = try await directory.createChannel(workspace: workspace.id, name: "general", kind: .public, creator: alice.id)
            let secret = try await directory.createChannel(workspace: workspace.id, name: "secret", kind: .private, creator: alice.id)
            await #expect(throws: DirectoryError.conflict("channel name general")) {
                _ = try await directory.createChannel(workspace: workspace.id, name: "general", kind: .public, creator: alice.id)
            }
            await #expect(throws: DirectoryError.forbidden("not a member of the channel's workspace")) {
                try await directory.joinChannel(general.id, user: bob.id)
            }
            try await directory.addWorkspaceMember(workspace: workspace.id, user: bob.id)
            try await directory.joinChannel(general.id, user: bob.id)
            try await directory.joinChannel(general.id, user: bob.id)
            await #expect(throws: DirectoryError.forbidden("channel secret is private")) {
                try await directory.joinChannel(secret.id, user: bob.id)
            }
            #expect(try await directory.channelMembers(general.id) == [alice.id, bob.id])
            #expect(try await directory.channels(workspace: workspace.id, visibleTo: alice.id).map(\.name) == ["general", "secret"])
            #expect(try await directory.channels(workspace: workspace.id, visibleTo: bob.id).map(\.name) == ["general"],
                    "a private channel is listed to its members only")
            #expect(try await directory.workspaceRole(workspace: workspace.id, user: alice.id) == "owner")
            #expect(try await directory.workspaceRole(workspace: workspace.id, user: bob.id) == "member")
            #expect(try await directory.isChannelMember(general.id, user: bob.id))
            #expect(try await !directory.isChannelMember(secret.id, user: bob.id))
            #expect(try await !directory.isChannelMember("not-a-uuid", user: bob.id))
            try await directory.leaveChannel(general.id, user: bob.id)
            #expect(try await directory.channelMembers(general.id) == [alice.id])
            #expect(try await directory.channel(id: general.id) == general)
        }
    }
}
