import Foundation
import Logging
import ParleyCore
import Synchronization

/// The node's notification service (DESIGN §1): jobs of the `notifications` queue, shared by
/// every node, run here by a `JobWorker`.
///
/// - `message` (queued with the message, in the statement that stores it): the planner picks
///   the recipients; each one's item joins their pending `digest`, due `window` after its
///   first item, so a burst becomes one notification.
/// - `digest`: waits out the recipient's do-not-disturb; drops what they read meanwhile;
///   stores the in-app notification, queues a `webhook` and an `email` job as their settings
///   ask, then pushes the notification on `user:{id}` to their sockets on every node.
/// - `push`: one per browser subscription of the user (Web Push, encrypted for it); a
///   subscription the push service says is gone is forgotten.
/// - `webhook`, `email`: one delivery each, retried with backoff on time-outs and 5xx, dead
///   on a refusal; the same idempotency key (`Message-ID`) on every attempt.
public final class NotificationServer: Sendable {
    public static let queue = "notifications"

    public struct Settings: Sendable {
        /// How long a recipient's digest collects items before it goes out.
        public var window: Duration
        public var workers: JobWorker.Settings
        /// Attempts of a webhook or email delivery before it is dead.
        public var deliveryAttempts: Int

        public init(window: Duration = .seconds(30), workers: JobWorker.Settings = JobWorker.Settings(), deliveryAttempts: Int = 8) {
            self.window = window
            self.workers = workers
            self.deliveryAttempts = deliveryAttempts
        }
    }

    public struct Stats: Sendable, Hashable {
        public var messagesPlanned = 0
        public var recipients = 0
        public var digests = 0
        /// Digests with nothing left to say (all read by the time they ran).
        public var digestsAllRead = 0
        public var inApp = 0
        public var webhooks = 0
        public var emails = 0
        public var pushes = 0
        public var deliveryFailures = 0
    }

    public let worker: JobWorker
    private let store: any NotificationStore
    private let webhooks: (any WebhookSender)?
    private let mail: (any MailSender)?
    public let push: (any PushSender)?
    private let publisher: any EventPublisher
    private let online: @Sendable (_ channel: String) async -> Set<String>
    private let settings: Settings
    private let counters = Mutex(Stats())
    private let logger: Logger

    /// `online(channel)`: the users online now in the channel's workspace (for `@here`).
    public init(jobs: any JobQueue, store: any NotificationStore, webhooks: (any WebhookSender)?, mail: (any MailSender)?,
                push: (any PushSender)? = nil, publisher: any EventPublisher, online: @escaping @Sendable (_ channel: String) async -> Set<String>,
                worker: String, settings: Settings = Settings(), logger: Logger = Logger(label: "parley.notifications")) {
        self.store = store
        self.webhooks = webhooks
        self.mail = mail
        self.push = push
        self.publisher = publisher
        self.online = online
        self.settings = settings
        self.logger = logger
        let handlers = Box<NotificationServer>()
        self.worker = JobWorker(queue: jobs, name: Self.queue, worker: worker, settings: settings.workers, handlers: [
            "message": { job in await handlers.value?.planMessage(job) ?? .retry("stopping") },
            "digest": { job in await handlers.value?.sendDigest(job) ?? .retry("stopping") },
            "webhook": { job in await handlers.value?.postWebhook(job) ?? .retry("stopping") },
            "email": { job in await handlers.value?.sendEmail(job) ?? .retry("stopping") },
            "push": { job in await handlers.value?.sendPush(job) ?? .retry("stopping") },
        ], logger: logger)
        handlers.value = self
    }

    public func stats() -> Stats { counters.withLock { $0 } }

    // MARK: Jobs

    func planMessage(_ job: Job) async -> JobOutcome {
        guard let messageID = job.payload["message_id"]?.stringValue else { return .dead("no message_id") }
        do {
            guard let context = try await store.context(messageID: messageID) else { return .succeeded }
            let online = context.message.body.contains("@here") ? await online(context.message.channelID) : []
            let recipients = NotificationPlanner.recipients(of: context, online: online)
            guard !recipients.isEmpty else { return .succeeded }
            guard try await store.fanOut(recipients, window: settings.window, completing: job.claim, worker: worker.identity) else {
                return .stale
            }
            counters.withLock {
                $0.messagesPlanned += 1
                $0.recipients += recipients.count
            }
            return .completedByHandler
        } catch {
            return .retry("\(error)")
        }
    }

    func sendDigest(_ job: Job) async -> JobOutcome {
        guard let user = job.payload["user"]?.stringValue else { return .dead("no user") }
        let items = (job.payload["items"]?.arrayValue ?? []).compactMap(NotificationItem.init(json:))
        do {
            let preferences = try await store.settings(user: user)
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            if let until = preferences.doNotDisturbUntil, until > now { return .later(.milliseconds(until - now)) }
            let read = try await store.lastRead(user: user, channels: Array(Set(items.map(\.channelID))))
            let unread = NotificationPlanner.unread(items, lastRead: read)
            guard !unread.isEmpty else {
                counters.withLock { $0.digestsAllRead += 1 }
                return .succeeded
            }
            let id = UUID().uuidString.lowercased()
            let title = NotificationPlanner.title(of: unread)
            let body: JSONValue = ["user": .string(user), "notification_id": .string(id), "title": .string(title),
                                   "items": .array(unread.map(\.json))]
            let priority = unread.map(\.reason.priority).max() ?? 0
            var deliveries: [NewJob] = []
            if preferences.webhookURL != nil && webhooks != nil {
                deliveries.append(NewJob(queue: Self.queue, kind: "webhook", payload: body, priority: priority,
                                         maximumAttempts: settings.deliveryAttempts))
            }
            if preferences.email && mail != nil {
                deliveries.append(NewJob(queue: Self.queue, kind: "email", payload: body, priority: priority,
                                         maximumAttempts: settings.deliveryAttempts))
            }
            if push != nil {
                for subscription in try await store.pushSubscriptions(user: user) {
                    var payload = body
                    if case .object(var members) = payload {
                        members["subscription"] = .string(subscription.id)
                        payload = .object(members)
                    }
                    deliveries.append(NewJob(queue: Self.queue, kind: "push", payload: payload, priority: priority,
                                             maximumAttempts: settings.deliveryAttempts))
                }
            }
            guard try await store.deliver(id: id, user: user, items: unread, deliveries: deliveries, completing: job.claim,
                                          worker: worker.identity) else { return .stale }
            counters.withLock {
                $0.digests += 1
                $0.inApp += 1
            }
            let unreadCount = (try? await store.unreadCount(user: user)) ?? 0
            publisher.publish(.notification(["id": .string(id), "title": .string(title), "items": .array(unread.map(\.json)),
                                             "unread": .int(Int64(unreadCount))]), topic: "user:\(user)")
            if !deliveries.isEmpty { worker.poke() }
            return .completedByHandler
        } catch {
            return .retry("\(error)")
        }
    }

    func postWebhook(_ job: Job) async -> JobOutcome {
        guard let user = job.payload["user"]?.stringValue, let id = job.payload["notification_id"]?.stringValue else {
            return .dead("no user or notification_id")
        }
        return await deliver {
            let preferences = try await self.store.settings(user: user)
            guard let url = preferences.webhookURL, let webhooks = self.webhooks else { return }
            var body = job.payload
            if case .object(var members) = body {
                members["delivery_attempt"] = .int(Int64(job.attempt))
                body = .object(members)
            }
            try await webhooks.send(WebhookRequest(url: url, body: body.jsonBytes, secret: preferences.webhookSecret,
                                                   idempotencyKey: "notification-\(id)"))
            self.counters.withLock { $0.webhooks += 1 }
        }
    }

    func sendEmail(_ job: Job) async -> JobOutcome {
        guard let user = job.payload["user"]?.stringValue, let id = job.payload["notification_id"]?.stringValue else {
            return .dead("no user or notification_id")
        }
        return await deliver {
            let preferences = try await self.store.settings(user: user)
            guard preferences.email, !preferences.emailAddress.isEmpty, let mail = self.mail else { return }
            let items = (job.payload["items"]?.arrayValue ?? []).compactMap(NotificationItem.init(json:))
            let text = items.map { "\($0.senderName) in #\($0.channelName): \($0.excerpt)" }.joined(separator: "\n")
            try await mail.send(MailMessage(to: preferences.emailAddress, subject: job.payload["title"]?.stringValue ?? "Parley",
                                            text: text, messageID: "<notification-\(id)@parley>"))
            self.counters.withLock { $0.emails += 1 }
        }
    }

    func sendPush(_ job: Job) async -> JobOutcome {
        guard let id = job.payload["notification_id"]?.stringValue, let subscriptionID = job.payload["subscription"]?.stringValue else {
            return .dead("no notification_id or subscription")
        }
        return await deliver(onGone: { why in
            _ = try? await self.store.removePushSubscription(id: subscriptionID, user: nil)
            self.logger.info("a push subscription is gone; forgotten", metadata: ["subscription": "\(subscriptionID)", "why": "\(why)"])
        }) {
            guard let push = self.push, let subscription = try await self.store.pushSubscription(id: subscriptionID) else { return }
            // What a service worker shows: a title, a line, and the items while they fit in a
            // push message (about 4 KB).
            var items = job.payload["items"]?.arrayValue ?? []
            func payload() -> JSONValue {
                ["notification_id": .string(id), "title": job.payload["title"] ?? "", "body": items.first?["excerpt"] ?? "",
                 "items": .array(items)]
            }
            while payload().jsonBytes.count > 3000 && !items.isEmpty { items.removeLast() }
            try await push.send(PushMessage(endpoint: subscription.endpoint, subscriberKey: subscription.key,
                                            authSecret: subscription.authSecret, payload: payload().jsonBytes, urgent: job.priority > 0))
            self.counters.withLock { $0.pushes += 1 }
        }
    }

    /// Runs one delivery: done when `send` returns; a permanent refusal is a dead letter, a
    /// destination that is gone is forgotten (`onGone`) and done; anything else is retried.
    private func deliver(onGone: ((String) async -> Void)? = nil, _ send: () async throws -> Void) async -> JobOutcome {
        do {
            try await send()
            return .succeeded
        } catch DeliveryError.gone(let why) where onGone != nil {
            await onGone?(why)
            return .succeeded
        } catch DeliveryError.permanent(let why) {
            counters.withLock { $0.deliveryFailures += 1 }
            return .dead(why)
        } catch {
            counters.withLock { $0.deliveryFailures += 1 }
            return .retry("\(error)")
        }
    }
}

/// A weak reference filled in after `init` (the handlers need the server they belong to,
/// which owns them).
final class Box<Value: AnyObject & Sendable>: Sendable {
    private struct Weak: @unchecked Sendable { weak var value: Value? }
    private let storage = Mutex(Weak())
    var value: Value? {
        get { storage.withLock { $0.value } }
        set { storage.withLock { $0.value = newValue } }
    }
}
