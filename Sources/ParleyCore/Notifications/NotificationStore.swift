/// The notifications' data (PostgreSQL in a cluster). The operations that finish a job do so
/// in the same transaction as their effects: a retried job (its worker died after the
/// commit, or before it) writes nothing twice.
public protocol NotificationStore: Sendable {
    /// The message of a stored `message` job and what the planner needs about it; nil when
    /// the message is gone.
    func context(messageID: String) async throws -> NotificationContext?
    /// Adds each recipient's item to their pending digest (one per user, due `window` after
    /// its first item) and completes `claim`, atomically. False (nothing written) when the
    /// claim is no longer `worker`'s.
    func fanOut(_ recipients: [NotificationPlanner.Recipient], window: Duration, completing claim: JobClaim,
                worker: String) async throws -> Bool
    func settings(user: String) async throws -> NotificationSettings
    func updateSettings(user: String, _ settings: NotificationSettings) async throws
    /// The user's last read seq in each of `channels`.
    func lastRead(user: String, channels: [String]) async throws -> [String: Int64]
    /// Stores the in-app notification `id` for `items`, adds `deliveries`, and completes
    /// `claim`, atomically. False when the claim is no longer `worker`'s.
    func deliver(id: String, user: String, items: [NotificationItem], deliveries: [NewJob], completing claim: JobClaim,
                 worker: String) async throws -> Bool
    /// The user's newest in-app notifications, and how many are unread.
    func notifications(user: String, limit: Int) async throws -> (notifications: [JSONValue], unread: Int)
    /// How many of the user's in-app notifications are unread.
    func unreadCount(user: String) async throws -> Int
    /// Marks the user's notifications `ids` (all when nil) read; returns how many changed.
    func markRead(user: String, ids: [String]?) async throws -> Int
    func setMuted(_ muted: Bool, channel: String, user: String) async throws
    /// The user's notification jobs that died (dead letters).
    func deadJobs(user: String) async throws -> [JobRecord]
    /// Whether job `id` is one of the user's notification jobs.
    func ownsJob(_ id: Int64, user: String) async throws -> Bool
    /// Registers a browser's subscription for `user` (an endpoint registered again moves to
    /// them, with its new keys); returns its id.
    func addPushSubscription(user: String, endpoint: String, key: [UInt8], authSecret: [UInt8]) async throws -> String
    func pushSubscriptions(user: String) async throws -> [PushSubscription]
    func pushSubscription(id: String) async throws -> PushSubscription?
    /// Removes the subscription (of `user`, when given); false when there was none.
    func removePushSubscription(id: String, user: String?) async throws -> Bool
}
