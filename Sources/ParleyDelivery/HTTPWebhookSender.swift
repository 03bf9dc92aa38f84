import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import ParleyCore

/// Posts notification webhooks with async-http-client. Each request carries
/// `X-Parley-Timestamp` (Unix seconds), `X-Parley-Signature: v1=<hex>` — the HMAC-SHA256 of
/// `"<timestamp>.<body>"` under the receiver's secret, so a receiver can check both who sent it
/// and that it is fresh — and `Idempotency-Key`, the same on every attempt of one delivery.
/// 2xx is delivered; a time-out, a connection failure, 408, 429 and 5xx are retried; any other
/// status is a refusal.
/// Receivers are reached only at addresses `policy` permits (public ones, unless the operator
/// allows a network).
public final class HTTPWebhookSender: WebhookSender {
    private let http: DeliveryHTTP

    public init(timeout: Duration = .seconds(10), policy: OutboundAddressPolicy = OutboundAddressPolicy()) {
        http = DeliveryHTTP(timeout: timeout, policy: policy)
    }

    public static func signature(secret: String, timestamp: Int64, body: [UInt8]) -> String {
        let key = SymmetricKey(data: Array(secret.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(timestamp).".utf8) + body, using: key)
        return "v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    public func send(_ webhook: WebhookRequest) async throws {
        guard let url = URL(string: webhook.url), ["http", "https"].contains(url.scheme ?? "") else {
            throw DeliveryError.permanent("not an http(s) URL: \(webhook.url)")
        }
        var request = HTTPClientRequest(url: webhook.url)
        request.method = .POST
        let timestamp = Int64(Date().timeIntervalSince1970)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Parley/\(ParleyVersion.current)")
        request.headers.add(name: "Idempotency-Key", value: webhook.idempotencyKey)
        request.headers.add(name: "X-Parley-Timestamp", value: "\(timestamp)")
        if let secret = webhook.secret {
            request.headers.add(name: "X-Parley-Signature", value: Self.signature(secret: secret, timestamp: timestamp, body: webhook.body))
        }
        request.body = .bytes(ByteBuffer(bytes: webhook.body))
        switch try await http.post(request) {
        case 200..<300: return
        case let status where status == 408 || status == 429 || status >= 500: throw DeliveryError.retryable("HTTP \(status)")
        case let status: throw DeliveryError.permanent("HTTP \(status)")
        }
    }

    public func shutdown() async {
        await http.shutdown()
    }
}
