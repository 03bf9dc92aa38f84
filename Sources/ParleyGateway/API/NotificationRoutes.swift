import Foundation
import Hummingbird
import ParleyCore
import ParleyRuntime

/// `/api/notifications…`: a user's in-app notifications, their delivery settings, channel
/// mutes, and their notification deliveries that died (listed, retried).
extension APIRoutes {
    func registerNotifications(on api: RouterGroup<ParleyRequestContext>) {
        api.get("notifications") { request, _ in try await handle { try await listNotifications(request) } }
        api.post("notifications/read") { request, context in try await handle { try await markNotificationsRead(request, context) } }
        api.get("notifications/settings") { request, _ in try await handle { try await notificationSettings(request) } }
        api.put("notifications/settings") { request, context in try await handle { try await updateNotificationSettings(request, context) } }
        api.get("notifications/dead") { request, _ in try await handle { try await deadNotifications(request) } }
        api.post("notifications/dead/:job/retry") { request, context in try await handle { try await retryNotification(request, context) } }
        api.put("channels/:channel/mute") { request, context in try await handle { try await mute(request, context) } }
        api.get("push/key") { _, _ in try await handle { try pushKey() } }
        api.post("push/subscriptions") { request, context in try await handle { try await subscribe(request, context) } }
        api.delete("push/subscriptions/:subscription") { request, context in try await handle { try await unsubscribe(request, context) } }
    }

    /// The VAPID public key a browser subscribes with (`applicationServerKey`).
    private func pushKey() throws -> JSONResponse {
        guard let push = node.notifications.push else { throw DirectoryError.notFound("Web Push (no VAPID key is configured)") }
        return JSONResponse(["public_key": .string(push.publicKey)])
    }

    /// A browser's `PushSubscription.toJSON()`: `{endpoint, keys: {p256dh, auth}}`.
    private func subscribe(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        guard node.notifications.push != nil else { throw DirectoryError.notFound("Web Push (no VAPID key is configured)") }
        let body = try await payload(request, context)
        let endpoint = try body.string("endpoint", maxLength: 2000)
        guard let url = URL(string: endpoint), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            throw ProtocolError.invalidField(field: "endpoint", reason: "must be the push service's URL")
        }
        try refuseUnreachable(url, field: "endpoint")
        let keys = try PayloadReader(body.members["keys"] ?? .null)
        guard let key = Base64URL.decode(try keys.string("p256dh", maxLength: 200)), key.count == 65, key.first == 4 else {
            throw ProtocolError.invalidField(field: "keys.p256dh", reason: "must be an uncompressed P-256 public key, base64url")
        }
        guard let auth = Base64URL.decode(try keys.string("auth", maxLength: 64)), auth.count == 16 else {
            throw ProtocolError.invalidField(field: "keys.auth", reason: "must be 16 bytes, base64url")
        }
        let id = try await node.notificationStore.addPushSubscription(user: user, endpoint: endpoint, key: key, authSecret: auth)
        return JSONResponse(["subscription": ["id": .string(id), "endpoint": .string(endpoint)]], status: .created)
    }

    private func unsubscribe(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let id = try self.id(context, "subscription")
        guard try await node.notificationStore.removePushSubscription(id: id, user: user) else {
            throw DirectoryError.notFound("subscription \(id)")
        }
        return JSONResponse(["removed": .string(id)])
    }


    private func listNotifications(_ request: Request) async throws -> JSONResponse {
        let user = try await authenticate(request)
        var limit = 50
        if let raw = request.uri.queryParameters["limit"] {
            guard let value = Int(raw), (1...200).contains(value) else {
                throw ProtocolError.invalidField(field: "limit", reason: "must be between 1 and 200")
            }
            limit = value
        }
        let (list, unread) = try await node.notificationStore.notifications(user: user, limit: limit)
        return JSONResponse(["notifications": .array(list), "unread": .int(Int64(unread))])
    }

    /// `{"ids": [...]}` marks those read; without `ids`, all of them.
    private func markNotificationsRead(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let body = try await payload(request, context)
        var ids: [String]?
        if let value = body.members["ids"], value != .null {
            guard let list = value.arrayValue, list.count <= 500 else {
                throw ProtocolError.wrongType(field: "ids", expected: "an array of at most 500 ids", found: value.typeName)
            }
            ids = try list.map { item in
                guard let id = item.stringValue, UUID(uuidString: id) != nil else {
                    throw ProtocolError.invalidField(field: "ids", reason: "must hold notification ids")
                }
                return id.lowercased()
            }
        }
        let marked = try await node.notificationStore.markRead(user: user, ids: ids)
        let unread = try await node.notificationStore.unreadCount(user: user)
        return JSONResponse(["marked": .int(Int64(marked)), "unread": .int(Int64(unread))])
    }

    private func notificationSettings(_ request: Request) async throws -> JSONResponse {
        let user = try await authenticate(request)
        return JSONResponse(["settings": Self.json(try await node.notificationStore.settings(user: user))])
    }

    /// A URL whose host is an address the delivery policy refuses (`http://169.254.169.254/`,
    /// `http://[::1]:8080/`) is refused at once; a name is checked when it is resolved, at
    /// each delivery (a dead letter says why).
    private func refuseUnreachable(_ url: URL, field: String) throws {
        guard var host = url.host else { return }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if let address = IPAddress(host), !node.configuration.deliveryPolicy.permits(address) {
            throw ProtocolError.invalidField(field: field, reason: "must not lead to a private, loopback or other special address")
        }
    }

    /// Changes the fields given: `dnd_until` (ms since 1970, null to end it), `webhook_url`
    /// (http or https, null to remove), `webhook_secret` (16–200 characters), `email` (bool).
    private func updateNotificationSettings(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let body = try await payload(request, context)
        var settings = try await node.notificationStore.settings(user: user)
        if body.members["dnd_until"] != nil {
            settings.doNotDisturbUntil = try body.optionalInt("dnd_until", in: 0...32_503_680_000_000)
        }
        if body.members["webhook_url"] != nil {
            let url = try body.optionalString("webhook_url", maxLength: 2000)
            if let url {
                guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil else {
                    throw ProtocolError.invalidField(field: "webhook_url", reason: "must be an http or https URL")
                }
                try refuseUnreachable(parsed, field: "webhook_url")
            }
            settings.webhookURL = url
        }
        if body.members["webhook_secret"] != nil {
            settings.webhookSecret = try body.optionalString("webhook_secret", maxLength: 200, minLength: 16)
        }
        if let value = body.members["email"] {
            guard case .bool(let email) = value else { throw ProtocolError.wrongType(field: "email", expected: "a boolean", found: value.typeName) }
            settings.email = email
        }
        try await node.notificationStore.updateSettings(user: user, settings)
        return JSONResponse(["settings": Self.json(settings)])
    }

    private func deadNotifications(_ request: Request) async throws -> JSONResponse {
        let user = try await authenticate(request)
        return JSONResponse(["jobs": .array(try await node.notificationStore.deadJobs(user: user).map(\.json))])
    }

    private func retryNotification(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let raw = try context.parameters.require("job")
        guard let job = Int64(raw), job > 0, try await node.notificationStore.ownsJob(job, user: user) else {
            throw DirectoryError.notFound("job \(raw.prefix(32))")
        }
        guard try await node.jobs.retry(id: job) else {
            throw DirectoryError.conflict("job \(job) is not dead")
        }
        node.notifications.worker.poke()
        return JSONResponse(["retried": .int(job)])
    }

    /// `{"muted": true|false}`: a muted channel notifies only of direct messages and mentions
    /// by name.
    private func mute(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let channel = try id(context, "channel")
        let body = try await payload(request, context)
        guard case .bool(let muted)? = body.members["muted"] else {
            throw ProtocolError.wrongType(field: "muted", expected: "a boolean", found: body.members["muted"]?.typeName ?? "nothing")
        }
        guard try await node.directory.isChannelMember(channel, user: user) else { throw ChannelError.notAMember }
        try await node.notificationStore.setMuted(muted, channel: channel, user: user)
        return JSONResponse(["channel": .string(channel), "muted": .bool(muted)])
    }

    private static func json(_ settings: NotificationSettings) -> JSONValue {
        ["dnd_until": settings.doNotDisturbUntil.map { .int($0) } ?? .null, "webhook_url": settings.webhookURL.map { .string($0) } ?? .null,
         "webhook_secret_set": .bool(settings.webhookSecret != nil), "email": .bool(settings.email)]
    }
}
