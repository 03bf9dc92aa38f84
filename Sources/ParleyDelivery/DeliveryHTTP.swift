import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import ParleyCore

/// What the HTTP deliveries (webhooks, Web Push) share: a POST to a URL a user chose, made only
/// to an address `policy` permits, following no redirect; a failure to get an answer is worth
/// another try.
///
/// The host is resolved here (getaddrinfo on threads of its own), every address it has is
/// checked, and the connection is pinned to a permitted one (async-http-client's `dnsOverride`:
/// TLS still checks the certificate against the host's name) — so a name that resolves to a
/// public address when checked and to a private one a moment later cannot lead the node into
/// its own network.
final class DeliveryHTTP: Sendable {
    let timeout: Duration
    let policy: OutboundAddressPolicy
    private let resolver: NIOThreadPool

    init(timeout: Duration, policy: OutboundAddressPolicy) {
        self.timeout = timeout
        self.policy = policy
        resolver = NIOThreadPool(numberOfThreads: 2)
        resolver.start()
    }

    func shutdown() async { try? await resolver.shutdownGracefully() }

    /// Sends `request` and returns the status code. A URL leading to an address the policy
    /// refuses is `DeliveryError.permanent`; a name that does not resolve, a time-out or a
    /// connection failure is `DeliveryError.retryable`.
    func post(_ request: HTTPClientRequest) async throws -> UInt {
        guard let url = URL(string: request.url), let host = url.host, !host.isEmpty else {
            throw DeliveryError.permanent("not a URL: \(request.url.prefix(80))")
        }
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(5), read: .nanoseconds(timeout.nanoseconds))
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        if let literal = IPAddress(bare) {
            try check([literal], host: host)
        } else {
            configuration.dnsOverride = [host: try check(await resolve(host), host: host).description]
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            try? await client.shutdown()
            return response.status.code
        } catch {
            try? await client.shutdown()
            throw DeliveryError.retryable("\(error)")
        }
    }

    /// The first of `addresses` the policy permits; refuses when none is.
    @discardableResult
    private func check(_ addresses: [IPAddress], host: String) throws -> IPAddress {
        guard let permitted = addresses.first(where: policy.permits) else {
            let listed = addresses.prefix(3).map(\.description).joined(separator: ", ")
            throw DeliveryError.permanent("\(host) leads to \(listed), not a public address "
                + "(an operator can allow a network with PARLEY_DELIVERY_ALLOWED_NETWORKS)")
        }
        return permitted
    }

    private func resolve(_ host: String) async throws -> [IPAddress] {
        let addresses = try await resolver.runIfActive { () -> [IPAddress] in
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, nil, &hints, &list)
            guard status == 0 else { throw DeliveryError.retryable("cannot resolve \(host): \(String(cString: gai_strerror(status)))") }
            defer { freeaddrinfo(list) }
            var found: [IPAddress] = []
            var next = list
            while let entry = next {
                if let address = entry.pointee.ai_addr {
                    switch Int32(address.pointee.sa_family) {
                    case AF_INET:
                        address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                            found += IPAddress(bytes: withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }).map { [$0] } ?? []
                        }
                    case AF_INET6:
                        address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                            found += IPAddress(bytes: withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }).map { [$0] } ?? []
                        }
                    default: break
                    }
                }
                next = entry.pointee.ai_next
            }
            return found
        }
        guard !addresses.isEmpty else { throw DeliveryError.retryable("\(host) has no address") }
        return addresses
    }
}
