/// Why a delivery failed: worth another try later, or not.
public enum DeliveryError: Error, Sendable, CustomStringConvertible {
    /// A time-out, a connection refused, a 5xx: the job retries with backoff.
    case retryable(String)
    /// The receiver refused the request itself (a 4xx, a rejected recipient): the job is dead.
    case permanent(String)

    public var description: String {
        switch self {
        case .retryable(let why): return "retryable: \(why)"
        case .permanent(let why): return "permanent: \(why)"
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
