import Foundation
import ParleyCore
import ParleyDelivery
import Testing

/// Webhooks (and pushes) go to URLs users choose: the sender reaches only addresses the policy
/// permits, checks every address a name resolves to, and connects to the one it checked.
@Suite("Deliveries reach only permitted addresses")
struct DeliveryPolicyTests {
    static func webhook(_ url: String) -> WebhookRequest {
        WebhookRequest(url: url, body: Array(#"{"hello":"world"}"#.utf8), secret: nil, idempotencyKey: "notification-1")
    }

    @Test func loopbackLinkLocalAndPrivateNamesAreRefusedByDefault() async throws {
        let sender = HTTPWebhookSender(timeout: .seconds(3))
        defer { Task { await sender.shutdown() } }
        let listening = try OneShotServer(reply: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", readsRequest: true)
        for url in ["http://127.0.0.1:\(listening.port)/hook", "http://localhost:\(listening.port)/hook", "http://[::1]:\(listening.port)/hook",
                    "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/hook"] {
            do {
                try await sender.send(Self.webhook(url))
                Issue.record("\(url) was delivered")
            } catch DeliveryError.permanent(let why) {
                #expect(why.contains("not a public address"), "\(url): \(why)")
            }
        }
        do {
            try await sender.send(Self.webhook("http://no-such-host.invalid/hook"))
            Issue.record("a name that does not resolve was delivered")
        } catch DeliveryError.retryable(let why) {
            #expect(why.contains("cannot resolve"), "\(why)")
        }
    }

    @Test func anAllowedNetworkIsReachedByNameAtTheCheckedAddress() async throws {
        let sender = HTTPWebhookSender(timeout: .seconds(5), policy: OutboundAddressPolicy(allowed: [IPNetwork("127.0.0.0/8")!]))
        defer { Task { await sender.shutdown() } }
        let byName = try OneShotServer(reply: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", readsRequest: true)
        try await sender.send(Self.webhook("http://localhost:\(byName.port)/hook"))
        let refusing = try OneShotServer(reply: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", readsRequest: true)
        do {
            try await sender.send(Self.webhook("http://127.0.0.1:\(refusing.port)/hook"))
            Issue.record("a 404 was delivered")
        } catch DeliveryError.permanent(let why) {
            #expect(why == "HTTP 404")
        }
        // Still not the link-local range.
        await #expect(throws: DeliveryError.self) { try await sender.send(Self.webhook("http://169.254.169.254/")) }
    }
}
