/// One numbered schema change. Migrations are append-only: a released one is never edited.
public struct Migration: Sendable, Hashable {
    public let version: Int
    public let name: String
    public let sql: String
}

extension Migration {
    /// Every migration, in order. The schema of DESIGN §5.
    public static let all: [Migration] = [
        Migration(version: 1, name: "core schema", sql: """
            CREATE TABLE users (
                id            uuid PRIMARY KEY,
                email         text NOT NULL UNIQUE,
                display_name  text NOT NULL,
                password_hash text NOT NULL,
                created_at    timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE workspaces (
                id         uuid PRIMARY KEY,
                name       text NOT NULL,
                slug       text NOT NULL UNIQUE,
                created_by uuid REFERENCES users (id),
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE workspace_members (
                workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                role         text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
                joined_at    timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (workspace_id, user_id)
            );
            -- owner_fence: the fencing token of the node that owns the channel; writes carrying
            -- an older token are refused.
            CREATE TABLE channels (
                id           uuid PRIMARY KEY,
                workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                name         text NOT NULL,
                kind         text NOT NULL CHECK (kind IN ('public', 'private', 'direct')),
                topic        text NOT NULL DEFAULT '',
                created_by   uuid REFERENCES users (id),
                created_at   timestamptz NOT NULL DEFAULT now(),
                archived_at  timestamptz,
                owner_fence  bigint NOT NULL DEFAULT 0,
                UNIQUE (workspace_id, name)
            );
            CREATE TABLE channel_members (
                channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
                user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                joined_at  timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (channel_id, user_id)
            );
            CREATE TABLE messages (
                id             uuid PRIMARY KEY,
                channel_id     uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
                seq            bigint NOT NULL CHECK (seq > 0),
                user_id        uuid NOT NULL REFERENCES users (id),
                body           text NOT NULL,
                thread_root_id uuid REFERENCES messages (id) DEFERRABLE INITIALLY DEFERRED,
                client_msg_id  text,
                created_at     timestamptz NOT NULL,
                edited_at      timestamptz,
                deleted_at     timestamptz,
                UNIQUE (channel_id, seq),
                UNIQUE (channel_id, client_msg_id)
            );
            CREATE TABLE reactions (
                message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                emoji      text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (message_id, user_id, emoji)
            );
            CREATE TABLE read_receipts (
                user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                channel_id    uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
                last_read_seq bigint NOT NULL DEFAULT 0,
                updated_at    timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (user_id, channel_id)
            );
            CREATE TABLE uploads (
                id             uuid PRIMARY KEY,
                workspace_id   uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                channel_id     uuid REFERENCES channels (id) ON DELETE SET NULL,
                user_id        uuid NOT NULL REFERENCES users (id),
                filename       text NOT NULL,
                content_type   text NOT NULL,
                size_bytes     bigint NOT NULL CHECK (size_bytes >= 0),
                sha256         text,
                status         text NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'scanning', 'processing', 'ready', 'rejected', 'failed', 'cancelled')),
                priority       int NOT NULL DEFAULT 0,
                storage_path   text,
                thumbnail_path text,
                error          text,
                created_at     timestamptz NOT NULL DEFAULT now(),
                updated_at     timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE notifications (
                id           uuid PRIMARY KEY,
                user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                kind         text NOT NULL CHECK (kind IN ('push', 'email', 'in_app', 'webhook')),
                priority     int NOT NULL DEFAULT 0,
                payload      jsonb NOT NULL,
                status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
                attempts     int NOT NULL DEFAULT 0,
                last_error   text,
                created_at   timestamptz NOT NULL DEFAULT now(),
                delivered_at timestamptz
            );
            """),
        Migration(version: 2, name: "lookup indexes", sql: """
            CREATE INDEX messages_thread_root ON messages (thread_root_id) WHERE thread_root_id IS NOT NULL;
            CREATE INDEX channels_workspace ON channels (workspace_id);
            CREATE INDEX channel_members_user ON channel_members (user_id);
            CREATE INDEX workspace_members_user ON workspace_members (user_id);
            CREATE INDEX notifications_pending ON notifications (user_id, created_at) WHERE status = 'pending';
            CREATE INDEX uploads_channel ON uploads (channel_id, created_at);
            """),
        // A client_msg_id is the sender's own: two senders may pick the same one.
        Migration(version: 3, name: "client_msg_id unique per sender", sql: """
            ALTER TABLE messages DROP CONSTRAINT messages_channel_id_client_msg_id_key;
            ALTER TABLE messages ADD CONSTRAINT messages_channel_sender_client_msg_id_key UNIQUE (channel_id, user_id, client_msg_id);
            """),
        // The job queue the nodes share (notifications, uploads), and what notifications need.
        Migration(version: 4, name: "jobs and notification settings", sql: """
            CREATE TABLE jobs (
                id           bigserial PRIMARY KEY,
                queue        text NOT NULL,
                kind         text NOT NULL,
                payload      jsonb NOT NULL,
                priority     int NOT NULL DEFAULT 0,
                state        text NOT NULL DEFAULT 'available'
                             CHECK (state IN ('available', 'running', 'completed', 'dead', 'cancelled')),
                attempt      int NOT NULL DEFAULT 0,
                max_attempts int NOT NULL DEFAULT 8 CHECK (max_attempts > 0),
                run_at       timestamptz NOT NULL DEFAULT now(),
                locked_by    text,
                locked_until timestamptz,
                unique_key   text,
                last_error   text,
                created_at   timestamptz NOT NULL DEFAULT now(),
                finished_at  timestamptz
            );
            CREATE INDEX jobs_due ON jobs (queue, priority DESC, run_at, id) WHERE state IN ('available', 'running');
            -- One pending job per key (a user's digest collects items until it runs).
            CREATE UNIQUE INDEX jobs_pending_key ON jobs (unique_key) WHERE state = 'available' AND attempt = 0;
            CREATE INDEX jobs_dead_user ON jobs ((payload->>'user')) WHERE state = 'dead';
            CREATE TABLE notification_settings (
                user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
                dnd_until      timestamptz,
                webhook_url    text,
                webhook_secret text,
                email          boolean NOT NULL DEFAULT false,
                updated_at     timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE channel_mutes (
                user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
                PRIMARY KEY (user_id, channel_id)
            );
            ALTER TABLE notifications ADD COLUMN read_at timestamptz;
            CREATE INDEX notifications_user ON notifications (user_id, created_at DESC);
            """),
        // Uploads as the processor runs them, and which messages carry which.
        Migration(version: 5, name: "upload processing and attachments", sql: """
            ALTER TABLE uploads DROP CONSTRAINT uploads_status_check;
            UPDATE uploads SET status = CASE status WHEN 'pending' THEN 'queued' WHEN 'processing' THEN 'thumbnailing'
                                                    WHEN 'rejected' THEN 'infected' ELSE status END;
            ALTER TABLE uploads ALTER COLUMN status SET DEFAULT 'queued';
            ALTER TABLE uploads ADD CONSTRAINT uploads_status_check
                CHECK (status IN ('queued', 'scanning', 'thumbnailing', 'ready', 'infected', 'failed', 'cancelled'));
            ALTER TABLE uploads ADD COLUMN threat text, ADD COLUMN job_id bigint, ADD COLUMN started_at timestamptz;
            CREATE INDEX uploads_sha256 ON uploads (sha256);
            -- No reference to messages: a message reaches PostgreSQL after its acknowledgement.
            CREATE TABLE message_attachments (
                message_id uuid NOT NULL,
                channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
                upload_id  uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (message_id, upload_id)
            );
            CREATE INDEX message_attachments_upload ON message_attachments (upload_id);
            CREATE INDEX message_attachments_channel ON message_attachments (channel_id, created_at DESC);
            """),
        // Browsers' Web Push subscriptions.
        Migration(version: 6, name: "push subscriptions", sql: """
            CREATE TABLE push_subscriptions (
                id         uuid PRIMARY KEY,
                user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                endpoint   text NOT NULL UNIQUE,
                p256dh     bytea NOT NULL,
                auth       bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);
            """),
        // The uploads a message carries (ids; NULL when none).
        Migration(version: 7, name: "message attachments column", sql: """
            ALTER TABLE messages ADD COLUMN attachments jsonb;
            """),
    ]
}

/// Applies `Migration.all` to a database: each migration in its own transaction, recorded
/// in `parley_migrations`, under a transaction-scoped advisory lock so that nodes starting
/// together apply each migration once and the others wait, then skip it.
public struct PostgresMigrator: Sendable {
    /// The advisory lock key (`'parley'` in ASCII).
    static let lockKey: Int64 = 0x7061_726c_6579
    public let client: PostgresClient
    public let migrations: [Migration]

    public init(client: PostgresClient, migrations: [Migration] = Migration.all) {
        self.client = client
        self.migrations = migrations
    }

    /// Applies what is missing; returns the versions this call applied.
    @discardableResult
    public func migrate() async throws -> [Int] {
        var applied: [Int] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) {
            let ran = try await client.transaction { transaction in
                // A migration may take longer than the statement timeout of the node's connections.
                try await transaction.simpleQuery("SET LOCAL statement_timeout = 0")
                try await transaction.query("SELECT pg_advisory_xact_lock($1)", Self.lockKey)
                try await transaction.simpleQuery("""
                    CREATE TABLE IF NOT EXISTS parley_migrations (
                        version    int PRIMARY KEY,
                        name       text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now()
                    )
                    """)
                let existing = try await transaction.query("SELECT 1 FROM parley_migrations WHERE version = $1", migration.version)
                guard existing.isEmpty else { return false }
                try await transaction.simpleQuery(migration.sql)
                try await transaction.query("INSERT INTO parley_migrations (version, name) VALUES ($1, $2)",
                                            migration.version, migration.name)
                return true
            }
            if ran { applied.append(migration.version) }
        }
        return applied
    }

    /// The versions recorded as applied.
    public func appliedVersions() async throws -> [Int] {
        let exists = try await client.query("SELECT to_regclass('parley_migrations') IS NOT NULL AS present")
        guard try exists[0].decode(Bool.self, at: 0) else { return [] }
        return try await client.query("SELECT version FROM parley_migrations ORDER BY version").map { try $0.decode(Int.self, at: 0) }
    }
}
