import Foundation
import Hummingbird
import ParleyCore
import ParleyRuntime

/// The HTTP API of DESIGN §7 under `/api`.
struct APIRoutes: Sendable {
    let node: Node
    static let maximumBodyBytes = 64 * 1024

    func register(on router: Router<ParleyRequestContext>) {
        let api = router.group("api")
        api.post("signup") { request, context in try await handle { try await signUp(request, context) } }
        api.post("signin") { request, context in try await handle { try await signIn(request, context) } }
        api.get("me") { request, _ in try await handle { try await me(request) } }
        api.post("workspaces") { request, context in try await handle { try await createWorkspace(request, context) } }
        api.post("workspaces/:workspace/members") { request, context in try await handle { try await addMember(request, context) } }
        api.get("workspaces/:workspace/channels") { request, context in try await handle { try await listChannels(request, context) } }
        api.post("workspaces/:workspace/channels") { request, context in try await handle { try await createChannel(request, context) } }
        api.post("channels/:channel/join") { request, context in try await handle { try await joinChannel(request, context) } }
        api.post("channels/:channel/leave") { request, context in try await handle { try await leaveChannel(request, context) } }
        api.delete("channels/:channel/members/:user") { request, context in try await handle { try await removeMember(request, context) } }
        api.get("channels/:channel/messages") { request, context in try await handle { try await history(request, context) } }
        api.post("channels/:channel/messages") { request, context in try await handle { try await post(request, context) } }
        registerNotifications(on: api)
        registerUploads(on: api)
    }

    func handle(_ body: () async throws -> JSONResponse) async throws -> JSONResponse {
        do {
            return try await body()
        } catch {
            let answer = APIError.from(error)
            guard answer.code == "unavailable" else { throw answer }
            let id = String(UUID().uuidString.prefix(8)).lowercased()
            node.logger.warning("API request failed", metadata: ["request_id": "\(id)", "error": "\(error)"])
            throw answer.withRequestID(id)
        }
    }

    // MARK: Accounts

    private func signUp(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let body = try await payload(request, context)
        let email = try body.string("email", maxLength: 254)
        try limitAuth(context, email)
        guard email.contains("@") else { throw ProtocolError.invalidField(field: "email", reason: "is not an email address") }
        let name = try body.string("display_name", maxLength: 80)
        let password = try body.string("password", maxLength: 200, minLength: 8)
        let user = try await node.directory.createUser(email: email, displayName: name, passwordHash: try await node.passwords.hash(password))
        return JSONResponse(["user": user.json, "token": .string(try await node.tokens.issue(userID: user.id))], status: .created)
    }

    private func signIn(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let body = try await payload(request, context)
        let email = try body.string("email", maxLength: 254)
        try limitAuth(context, email)
        let password = try body.string("password", maxLength: 200)
        guard let user = try await node.directory.user(email: email),
              try await node.passwords.verify(password, hash: user.passwordHash) else {
            throw APIError(.unauthorized, "unauthorized", "wrong email or password")
        }
        return JSONResponse(["user": user.json, "token": .string(try await node.tokens.issue(userID: user.id))])
    }

    private func me(_ request: Request) async throws -> JSONResponse {
        let user = try await authenticate(request)
        guard let record = try await node.directory.user(id: user) else { throw APIError.unauthorized }
        return JSONResponse(["user": record.json])
    }

    // MARK: Workspaces and channels

    private func createWorkspace(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let body = try await payload(request, context)
        let name = try body.string("name", maxLength: 80)
        let slug = try body.optionalID("slug") ?? Self.slug(name)
        return JSONResponse(["workspace": try await node.directory.createWorkspace(name: name, slug: slug, owner: user).json],
                            status: .created)
    }

    private func addMember(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let workspace = try id(context, "workspace")
        try await requireWorkspaceAdmin(workspace, user)
        let email = try await payload(request, context).string("email", maxLength: 254)
        guard let member = try await node.directory.user(email: email) else { throw DirectoryError.notFound("user \(email)") }
        try await node.directory.addWorkspaceMember(workspace: workspace, user: member.id)
        await node.presence.announce(.memberJoined(["user": member.json, "workspace_id": .string(workspace)]), in: workspace)
        return JSONResponse(["user": member.json])
    }

    private func listChannels(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let workspace = try id(context, "workspace")
        try await requireWorkspaceMember(workspace, user)
        return JSONResponse(["channels": .array(try await node.directory.channels(workspace: workspace, visibleTo: user).map(\.json))])
    }

    private func createChannel(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let workspace = try id(context, "workspace")
        let body = try await payload(request, context)
        let name = try body.string("name", maxLength: 80)
        let kindText = try body.optionalString("kind", maxLength: 16) ?? "public"
        guard let kind = ChannelRecord.Kind(rawValue: kindText) else {
            throw ProtocolError.invalidField(field: "kind", reason: "must be public, private or direct")
        }
        let channel = try await node.directory.createChannel(workspace: workspace, name: name, kind: kind, creator: user)
        if kind == .public {
            await node.presence.announce(.channelCreated(["channel": channel.json]), in: workspace)
        }
        return JSONResponse(["channel": channel.json], status: .created)
    }

    private func joinChannel(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let channel = try id(context, "channel")
        try await node.directory.joinChannel(channel, user: user)
        await node.bus.broadcastControl("member_added", ["channel": .string(channel), "user": .string(user)])
        return JSONResponse(["joined": .string(channel)])
    }

    /// The user leaves the channel: history, receipts and live messages stop at once.
    private func leaveChannel(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let channel = try id(context, "channel")
        guard try await node.directory.isChannelMember(channel, user: user) else { throw ChannelError.notAMember }
        try await remove(user, from: channel)
        return JSONResponse(["left": .string(channel)])
    }

    /// The workspace's owner or an admin removes a member from one of its channels.
    private func removeMember(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let channel = try id(context, "channel")
        let member = try id(context, "user")
        guard let record = try await node.directory.channel(id: channel) else { throw DirectoryError.notFound("channel \(channel)") }
        try await requireWorkspaceAdmin(record.workspaceID, user)
        guard try await node.directory.isChannelMember(channel, user: member) else { throw DirectoryError.notFound("member \(member)") }
        try await remove(member, from: channel)
        return JSONResponse(["removed": .string(member)])
    }

    private func remove(_ user: String, from channel: String) async throws {
        try await node.directory.leaveChannel(channel, user: user)
        // Every node: the owner's server forgets the member, and the user's sockets on the
        // channel get phx_close and nothing more.
        await node.bus.broadcastControl("member_removed", ["channel": .string(channel), "user": .string(user)])
    }

    // MARK: Messages

    private func history(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let channel = try id(context, "channel")
        let query = request.uri.queryParameters
        func number(_ name: String) throws -> Int64? {
            guard let raw = query[Substring(name)] else { return nil }
            guard let value = Int64(raw), value >= 0 else { throw ProtocolError.invalidField(field: name, reason: "must be a whole number") }
            return value
        }
        let command = try ChannelCommand(event: "load_history", payload: .object([
            "before": try number("before").map { .int($0) } ?? .null, "after": try number("after").map { .int($0) } ?? .null,
            "limit": try number("limit").map { .int($0) } ?? .null,
        ]), limits: node.limits)
        guard case .loadHistory(let before, let after, let limit) = command else { throw ChannelError.notFound("history") }
        guard try await node.directory.isChannelMember(channel, user: user) else { throw ChannelError.notAMember }
        return JSONResponse(["messages": .array(try await node.bus.feeds.history(channel, before: before, after: after, limit: limit).map(\.json))])
    }

    private func post(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let channel = try id(context, "channel")
        let body = try await payload(request, context)
        guard case .newMessage(let text, let clientID, let root) = try ChannelCommand(event: "new_message", payload: .object(body.members),
                                                                                     limits: node.limits) else {
            throw ChannelError.notFound("message")
        }
        let attachments = try await node.attachableUploads(body.members["attachments"], channel: channel, user: user)
        let message = try await node.channels.call(.post(body: text, clientMessageID: clientID, threadRootID: root,
                                                         attachments: attachments.map(\.id)),
                                                   channel: channel, user: user).message()
        try await node.attach(attachments, to: message)
        return JSONResponse(["message": message.json, "attachments": .array(attachments.map(\.json))], status: .created)
    }

    // MARK: Helpers

    func authenticate(_ request: Request) async throws -> String {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { throw APIError.unauthorized }
        do {
            return try await node.tokens.verify(String(header.dropFirst("Bearer ".count)))
        } catch {
            throw APIError(.unauthorized, "unauthorized", error.description)
        }
    }

    /// A path id: a malformed one names nothing there is (404), and never reaches a query.
    func id(_ context: ParleyRequestContext, _ name: String) throws -> String {
        let value = try context.parameters.require(name)
        guard UUID(uuidString: value) != nil else { throw DirectoryError.notFound("\(name) \(value.prefix(64))") }
        return value.lowercased()
    }

    private func limitAuth(_ context: ParleyRequestContext, _ email: String) throws {
        if let wait = node.requests.allowAuth(address: context.clientAddress, email: email) {
            throw APIError(.tooManyRequests, "rate_limited", "too many attempts; retry in \(max(1, wait.milliseconds / 1000)) s")
        }
    }

    private func requireWorkspaceAdmin(_ workspace: String, _ user: String) async throws {
        switch try await node.directory.workspaceRole(workspace: workspace, user: user) {
        case "owner"?, "admin"?: return
        case nil: throw DirectoryError.forbidden("not a member of workspace \(workspace)")
        default: throw DirectoryError.forbidden("only the workspace's owner or an admin can do this")
        }
    }

    func requireWorkspaceMember(_ workspace: String, _ user: String) async throws {
        guard try await node.directory.isWorkspaceMember(workspace: workspace, user: user) else {
            throw DirectoryError.forbidden("not a member of workspace \(workspace)")
        }
    }

    func payload(_ request: Request, _ context: ParleyRequestContext) async throws -> PayloadReader {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: Self.maximumBodyBytes)
        } catch {
            throw ProtocolError.tooLarge(field: "body", limit: Self.maximumBodyBytes, size: Self.maximumBodyBytes + 1)
        }
        do {
            return try PayloadReader(try JSONParser.parse(Array(buffer.readableBytesView)))
        } catch let error as JSONParseError {
            throw ProtocolError.malformedJSON(error)
        }
    }

    static func slug(_ name: String) -> String {
        let lowered = name.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : "-" }.joined()
        let trimmed = lowered.split(separator: "-").joined(separator: "-")
        let base = trimmed.isEmpty ? "workspace" : String(trimmed.prefix(40))
        return Topic.isValidID(base) ? base : "workspace"
    }
}
