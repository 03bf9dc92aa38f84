/// Why a delivery failed: worth another try later, or not.
public enum DeliveryError: Error, Sendable, CustomStringConvertible {
    /// A time-out, a connection refused, a 5xx: the job retries with backoff.
    case retryable(String)
    /// The receiver refused the request itself (a 4xx, a rejected recipient): the job is dead.
    case permanent(String)
    /// The destination no longer exists (a push subscription the browser dropped): forget it.
    case gone(String)

    public var description: String {
        switch self {
        case .retryable(let why): return "retryable: \(why)"
        case .permanent(let why): return "permanent: \(why)"
        case .gone(let why): return "gone: \(why)"
        }
    }
}

/// A signed webhook request (the adapter posts it; async-http-client in the executable).
public struct WebhookRequest: Sendable {
    public let url: String
    public let body: [UInt8]
    /// The receiver's key of the HMAC-SHA256 signature; nil: unsigned.
    public let secret: String?
    /// The same for every attempt of one delivery: receivers de-duplicate by it.
    public let idempotencyKey: String

    public init(url: String, body: [UInt8], secret: String?, idempotencyKey: String) {
        self.url = url
        self.body = body
        self.secret = secret
        self.idempotencyKey = idempotencyKey
    }
}

public protocol WebhookSender: Sendable {
    /// Posts `request`; throws `DeliveryError`.
    func send(_ request: WebhookRequest) async throws
}

public struct MailMessage: Sendable, Hashable {
    public let to: String
    public let subject: String
    public let text: String
    /// The `Message-ID`: the same for every attempt of one delivery.
    public let messageID: String

    public init(to: String, subject: String, text: String, messageID: String) {
        self.to = to
        self.subject = subject
        self.text = text
        self.messageID = messageID
    }
}

public protocol MailSender: Sendable {
    /// Hands `message` to the mail server; throws `DeliveryError`.
    func send(_ message: MailMessage) async throws
}

/// A browser's push subscription (the Push API's `PushSubscription`, registered by the user).
public struct PushSubscription: Sendable, Hashable {
    public let id: String
    public let user: String
    public let endpoint: String
    /// The subscription's P-256 public key, uncompressed (65 bytes).
    public let key: [UInt8]
    /// Its 16-byte auth secret.
    public let authSecret: [UInt8]

    public init(id: String, user: String, endpoint: String, key: [UInt8], authSecret: [UInt8]) {
        self.id = id
        self.user = user
        self.endpoint = endpoint
        self.key = key
        self.authSecret = authSecret
    }
}

/// One push message for one subscription.
public struct PushMessage: Sendable, Hashable {
    public let endpoint: String
    public let subscriberKey: [UInt8]
    public let authSecret: [UInt8]
    /// The cleartext (JSON); the sender encrypts it for the subscription.
    public let payload: [UInt8]
    public let urgent: Bool
    /// Seconds the push service keeps it for an offline browser.
    public let timeToLive: Int

    public init(endpoint: String, subscriberKey: [UInt8], authSecret: [UInt8], payload: [UInt8], urgent: Bool, timeToLive: Int = 86_400) {
        self.endpoint = endpoint
        self.subscriberKey = subscriberKey
        self.authSecret = authSecret
        self.payload = payload
        self.urgent = urgent
        self.timeToLive = timeToLive
    }
}

public protocol PushSender: Sendable {
    /// The VAPID public key browsers subscribe with.
    var publicKey: String { get }
    /// Sends `push`; throws `DeliveryError` (`gone` when the subscription no longer exists).
    func send(_ push: PushMessage) async throws
}
