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
            // A draining node takes no new sockets (HAProxy retries a 503 on another node).
            guard !node.draining.isDraining else {
                throw APIError(.serviceUnavailable, "unavailable", "this node is draining; connect again")
            }
            let query = request.uri.queryParameters
            guard PhoenixCodec(vsn: query["vsn"].map(String.init)) != nil else {
                throw APIError(.badRequest, "invalid_payload", "unsupported vsn; use 1.0.0 or 2.0.0")
            }
            if let token = Self.token(request) {
                do { _ = try await node.tokens.verify(token) } catch {
                    throw APIError(.forbidden, "unauthorized", "the token is not valid")
                }
            }
            return .upgrade([:])
        }, onUpgrade: { inbound, _, context in
            let codec = PhoenixCodec(vsn: context.request.uri.queryParameters["vsn"].map(String.init)) ?? .v2
            let user: String? = if let token = Self.token(context.request) { try? await node.tokens.verify(token) } else { nil }
            guard let channel = context.requestContext.channel else { return }
            let session = SocketSession(node: node, codec: codec, user: user, address: context.requestContext.clientAddress,
                                        channel: channel)
            node.metrics.connections.increment()
            defer { node.metrics.connections.decrement() }
            let outbox = session.outbox
            node.sockets.add(outbox)
            defer { node.sockets.remove(outbox) }
            // The handler's own task reads; frames out go straight to the channel (SocketOutbox);
            // the node's SocketSweeper closes silent sockets. No other task per connection.
            do {
                for try await message in inbound.messages(maxSize: Self.maximumFrameBytes) {
                    outbox.touch()
                    switch message {
                    case .text(let text): await session.receive(text: Array(text.utf8))
                    case .binary(let buffer): await session.receive(binary: Array(buffer.readableBytesView))
                    }
                }
            } catch {
                context.logger.debug("socket ended", metadata: ["error": "\(error)"])
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
