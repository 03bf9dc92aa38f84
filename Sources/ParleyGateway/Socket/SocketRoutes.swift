import Hummingbird
import HummingbirdWebSocket
import NIOCore
import ParleyCore

/// `GET /socket/websocket?vsn=…&token=…`: the Phoenix Channels endpoint.
struct SocketRoutes: Sendable {
    let node: Node
    static let maximumFrameBytes = 1 << 20

    func register(on router: Router<ParleyRequestContext>) {
        router.ws("socket/websocket", shouldUpgrade: { request, _ in
            let query = request.uri.queryParameters
            guard PhoenixCodec(vsn: query["vsn"].map(String.init)) != nil else {
                throw APIError(.badRequest, "invalid_payload", "unsupported vsn; use 1.0.0 or 2.0.0")
            }
            if let token = Self.token(request) {
                do { _ = try await node.tokens.verify(token) } catch {
                    throw APIError(.forbidden, "unauthorized", "\(error)")
                }
            }
            return .upgrade([:])
        }, onUpgrade: { inbound, outbound, context in
            let codec = PhoenixCodec(vsn: context.request.uri.queryParameters["vsn"].map(String.init)) ?? .v2
            let user: String? = if let token = Self.token(context.request) { try? await node.tokens.verify(token) } else { nil }
            let session = SocketSession(node: node, codec: codec, user: user, channel: context.requestContext.channel)
            node.metrics.connections.increment()
            defer { node.metrics.connections.decrement() }
            let outbox = session.outbox
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in outbox.closing {}
                    if outbox.didOverflow {
                        try await outbound.close(.policyViolation, reason: "client too slow")
                    }
                }
                group.addTask {
                    for try await message in inbound.messages(maxSize: Self.maximumFrameBytes) {
                        switch message {
                        case .text(let text): await session.receive(text: Array(text.utf8))
                        case .binary(let buffer): await session.receive(binary: Array(buffer.readableBytesView))
                        }
                    }
                    await session.close()
                }
                group.addTask {
                    // A client that vanished without closing (a laptop lid, a dropped network)
                    // would otherwise stay present forever.
                    let timeout = node.configuration.socketTimeout
                    while ContinuousClock.now - (await session.lastReceived) < timeout {
                        try await Task.sleep(for: min(timeout / 4, .seconds(5)))
                    }
                    node.metrics.socketTimeouts.increment()
                    try await outbound.close(.goingAway, reason: "timeout")
                }
                try await group.next()
                group.cancelAll()
            }
            await session.close()
        })
    }

    /// The token from the query (`token=`) or an `Authorization: Bearer` header.
    static func token(_ request: Request) -> String? {
        if let token = request.uri.queryParameters["token"], !token.isEmpty { return String(token) }
        if let header = request.headers[.authorization], header.hasPrefix("Bearer ") { return String(header.dropFirst(7)) }
        return nil
    }
}
