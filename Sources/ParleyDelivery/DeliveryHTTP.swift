import AsyncHTTPClient
import NIOCore
import ParleyCore

/// What the HTTP deliveries (webhooks, Web Push) share: one client that follows no redirect,
/// and a POST whose failure to get an answer is worth another try.
enum DeliveryHTTP {
    static func client(timeout: Duration) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(5), read: .nanoseconds(timeout.nanoseconds))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Sends `request` and returns the status code; a time-out or a connection failure is
    /// `DeliveryError.retryable`.
    static func post(_ request: HTTPClientRequest, on client: HTTPClient, timeout: Duration) async throws -> UInt {
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return response.status.code
        } catch {
            throw DeliveryError.retryable("\(error)")
        }
    }
}
