import Foundation
import ParleyCore

/// `NotificationStore` in PostgreSQL. A job's effects and its completion share a transaction
/// whose first statement completes the claim (and so locks the job's row): a stale claim
/// rolls everything back.
public struct PostgresNotificationStore: NotificationStore {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    private struct StaleClaim: Error {}

    /// Runs `body` and completes `claim` in one transaction; false when the claim was stale.
    private func completing(_ claim: JobClaim, worker: String, _ body: (PostgresTransaction) async throws -> Void) async throws -> Bool {
        do {
            try await client.transaction { transaction in
                guard try await PostgresJobQueue.complete(claim, worker: worker, on: transaction) else { throw StaleClaim() }
                try await body(transaction)
            }
            return true
        } catch is StaleClaim {
            return false
        }
    }

    public func context(messageID: String) async throws -> NotificationContext? {
        guard UUID(uuidString: messageID) != nil else { return nil }
        let rows = try await client.query("""
            SELECT \(PostgresMessageStore.selectColumns("m")), c.name, c.kind = 'direct', u.display_name
            FROM messages m JOIN channels c ON c.id = m.channel_id JOIN users u ON u.id = m.user_id
            WHERE m.id = $1::uuid
            """, messageID)
        guard let row = rows.first else { return nil }
        let message = try PostgresMessageStore.message(row)
        let members = try await client.query("""
            SELECT u.id::text, u.display_name, u.email FROM channel_members cm JOIN users u ON u.id = cm.user_id
            WHERE cm.channel_id = $1::uuid
            """, message.channelID).map {
            NotificationMember(id: try $0.decode(at: 0), displayName: try $0.decode(at: 1), email: try $0.decode(at: 2))
        }
        var participants: Set<String> = []
        if let root = message.threadRootID {
            participants = Set(try await client.query("""
                SELECT user_id::text FROM messages WHERE id = $1::uuid
                UNION SELECT user_id::text FROM messages WHERE thread_root_id = $1::uuid AND seq < $2
                """, root, message.seq).map { try $0.decode(String.self, at: 0) })
        }
        let muted = Set(try await client.query("SELECT user_id::text FROM channel_mutes WHERE channel_id = $1::uuid", message.channelID)
            .map { try $0.decode(String.self, at: 0) })
        let after = PostgresMessageStore.selectedColumnCount
        return NotificationContext(message: message, channelName: try row.decode(at: after), isDirect: try row.decode(at: after + 1),
                                   senderName: try row.decode(at: after + 2), members: members, threadParticipants: participants,
                                   muted: muted)
    }

    public func fanOut(_ recipients: [NotificationPlanner.Recipient], window: Duration, completing claim: JobClaim,
                       worker: String) async throws -> Bool {
        try await completing(claim, worker: worker) { transaction in
            for recipient in recipients {
                let payload: JSONValue = ["user": .string(recipient.user), "items": [recipient.item.json]]
                try await transaction.query("""
                    INSERT INTO jobs (queue, kind, payload, priority, run_at, unique_key)
                    VALUES ('notifications', 'digest', $1::jsonb, $2, now() + $3::bigint * interval '1 millisecond', 'digest:' || $4)
                    ON CONFLICT (unique_key) WHERE state = 'available' AND attempt = 0 DO UPDATE
                    SET payload = jsonb_set(jobs.payload, '{items}', (jobs.payload->'items') || (excluded.payload->'items')),
                        priority = greatest(jobs.priority, excluded.priority)
                    """, [payload.jsonText, recipient.priority, window.milliseconds, recipient.user])
            }
        }
    }

    public func settings(user: String) async throws -> NotificationSettings {
        let rows = try await client.query("""
            SELECT (extract(epoch FROM s.dnd_until) * 1000)::bigint, s.webhook_url, s.webhook_secret, coalesce(s.email, false), u.email
            FROM users u LEFT JOIN notification_settings s ON s.user_id = u.id WHERE u.id = $1::uuid
            """, user)
        guard let row = rows.first else { return NotificationSettings() }
        return NotificationSettings(doNotDisturbUntil: try row.decode(at: 0), webhookURL: try row.decode(at: 1),
                                    webhookSecret: try row.decode(at: 2), email: try row.decode(at: 3), emailAddress: try row.decode(at: 4))
    }

    public func updateSettings(user: String, _ settings: NotificationSettings) async throws {
        try await client.query("""
            INSERT INTO notification_settings (user_id, dnd_until, webhook_url, webhook_secret, email)
            VALUES ($1::uuid, to_timestamp($2::bigint / 1000.0), $3, $4, $5)
            ON CONFLICT (user_id) DO UPDATE SET dnd_until = excluded.dnd_until, webhook_url = excluded.webhook_url,
                webhook_secret = excluded.webhook_secret, email = excluded.email, updated_at = now()
            """, user, settings.doNotDisturbUntil, settings.webhookURL, settings.webhookSecret, settings.email)
    }

    public func lastRead(user: String, channels: [String]) async throws -> [String: Int64] {
        let ids = channels.filter { UUID(uuidString: $0) != nil }
        guard !ids.isEmpty else { return [:] }
        var read: [String: Int64] = [:]
        for row in try await client.query("""
            SELECT channel_id::text, last_read_seq FROM read_receipts
            WHERE user_id = $1::uuid AND channel_id = ANY (string_to_array($2, ',')::uuid[])
            """, user, ids.joined(separator: ",")) {
            read[try row.decode(String.self, at: 0)] = try row.decode(at: 1)
        }
        return read
    }

    public func deliver(id: String, user: String, items: [NotificationItem], deliveries: [NewJob], completing claim: JobClaim,
                        worker: String) async throws -> Bool {
        try await completing(claim, worker: worker) { transaction in
            let payload: JSONValue = ["title": .string(NotificationPlanner.title(of: items)), "items": .array(items.map(\.json))]
            try await transaction.query("""
                INSERT INTO notifications (id, user_id, kind, priority, payload, status, delivered_at)
                VALUES ($1::uuid, $2::uuid, 'in_app', $3, $4::jsonb, 'delivered', now())
                """, id, user, items.map(\.reason.priority).max() ?? 0, payload.jsonText)
            for job in deliveries {
                try await transaction.query("""
                    INSERT INTO jobs (queue, kind, payload, priority, max_attempts) VALUES ($1, $2, $3::jsonb, $4, $5)
                    """, job.queue, job.kind, job.payload.jsonText, job.priority, job.maximumAttempts)
            }
        }
    }

    public func notifications(user: String, limit: Int) async throws -> (notifications: [JSONValue], unread: Int) {
        let rows = try await client.query("""
            SELECT id::text, payload::text, (extract(epoch FROM created_at) * 1000)::bigint, (extract(epoch FROM read_at) * 1000)::bigint
            FROM notifications WHERE user_id = $1::uuid AND kind = 'in_app' ORDER BY created_at DESC LIMIT $2
            """, user, limit)
        let list: [JSONValue] = try rows.map { row in
            let payload = (try? JSONParser.parse(try row.decode(String.self, at: 1))) ?? [:]
            let readAt: Int64? = try row.decode(at: 3)
            return ["id": .string(try row.decode(at: 0)), "title": payload["title"] ?? "", "items": payload["items"] ?? [],
                    "created_at": .int(try row.decode(at: 2)), "read_at": readAt.map { .int($0) } ?? .null]
        }
        return (list, try await unreadCount(user: user))
    }

    public func unreadCount(user: String) async throws -> Int {
        try await client.query("""
            SELECT count(*) FROM notifications WHERE user_id = $1::uuid AND kind = 'in_app' AND read_at IS NULL
            """, user)[0].decode(Int.self, at: 0)
    }

    public func markRead(user: String, ids: [String]?) async throws -> Int {
        if let ids {
            let valid = ids.filter { UUID(uuidString: $0) != nil }
            guard !valid.isEmpty else { return 0 }
            let list = valid.indices.map { "$\($0 + 2)::uuid" }.joined(separator: ", ")
            return try await client.query("""
                UPDATE notifications SET read_at = now() WHERE user_id = $1::uuid AND read_at IS NULL AND id IN (\(list)) RETURNING 1
                """, [user] + valid).count
        }
        return try await client.query("UPDATE notifications SET read_at = now() WHERE user_id = $1::uuid AND read_at IS NULL RETURNING 1",
                                      user).count
    }

    public func setMuted(_ muted: Bool, channel: String, user: String) async throws {
        if muted {
            try await client.query("INSERT INTO channel_mutes (user_id, channel_id) VALUES ($1::uuid, $2::uuid) ON CONFLICT DO NOTHING",
                                   user, channel)
        } else {
            try await client.query("DELETE FROM channel_mutes WHERE user_id = $1::uuid AND channel_id = $2::uuid", user, channel)
        }
    }

    public func deadJobs(user: String) async throws -> [JobRecord] {
        try await client.query("""
            SELECT id, kind, state, attempt, last_error, payload::text FROM jobs
            WHERE queue = 'notifications' AND state = 'dead' AND payload->>'user' = $1 ORDER BY id DESC LIMIT 100
            """, user).map { row in
            JobRecord(id: try row.decode(at: 0), kind: try row.decode(at: 1), state: JobState(rawValue: try row.decode(at: 2)) ?? .dead,
                      attempt: try row.decode(at: 3), lastError: try row.decode(at: 4),
                      payload: (try? JSONParser.parse(try row.decode(String.self, at: 5))) ?? .null)
        }
    }

    public func ownsJob(_ id: Int64, user: String) async throws -> Bool {
        !(try await client.query("SELECT 1 FROM jobs WHERE id = $1 AND queue = 'notifications' AND payload->>'user' = $2", id, user))
            .isEmpty
    }

    public func addPushSubscription(user: String, endpoint: String, key: [UInt8], authSecret: [UInt8]) async throws -> String {
        try await client.query("""
            INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth) VALUES ($1::uuid, $2::uuid, $3, $4, $5)
            ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth
            RETURNING id::text
            """, UUID().uuidString.lowercased(), user, endpoint, key, authSecret)[0].decode(String.self, at: 0)
    }

    public func pushSubscriptions(user: String) async throws -> [PushSubscription] {
        try await client.query("SELECT id::text, user_id::text, endpoint, p256dh, auth FROM push_subscriptions WHERE user_id = $1::uuid",
                               user).map(Self.subscription)
    }

    public func pushSubscription(id: String) async throws -> PushSubscription? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try await client.query("SELECT id::text, user_id::text, endpoint, p256dh, auth FROM push_subscriptions WHERE id = $1::uuid",
                                      id).first.map(Self.subscription)
    }

    public func removePushSubscription(id: String, user: String?) async throws -> Bool {
        guard UUID(uuidString: id) != nil else { return false }
        return !(try await client.query("""
            DELETE FROM push_subscriptions WHERE id = $1::uuid AND ($2::uuid IS NULL OR user_id = $2::uuid) RETURNING 1
            """, id, user)).isEmpty
    }

    private static func subscription(_ row: PostgresRow) throws -> PushSubscription {
        PushSubscription(id: try row.decode(at: 0), user: try row.decode(at: 1), endpoint: try row.decode(at: 2), key: try row.decode(at: 3),
                         authSecret: try row.decode(at: 4))
    }
}
