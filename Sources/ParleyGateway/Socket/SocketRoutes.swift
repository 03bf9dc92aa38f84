import Hummingbird
import NIOCore
import ParleyCore

/// `GET /socket/websocket?vsn=…&token=…`: the Phoenix Channels endpoint. The upgrade itself
/// happens below the router (`ParleyHTTPChannel`); a request that reaches this route was not
/// upgraded, and gets the reason: the node drains (503), an unsupported `vsn` (400), a token
/// that is not valid (403), or no WebSocket upgrade asked for (400).
struct SocketRoutes: Sendable {
    let node: Node
    static let maximumFrameBytes = 1 << 20

    func register(on router: Router<ParleyRequestContext>) {
        router.get("socket/websocket") { request, _ -> Response in
            _ = try await SocketAdmission.check(node: node, uri: request.uri.description,
                                                authorization: request.headers[.authorization])
            throw APIError(.badRequest, "invalid_payload", "this endpoint takes WebSocket upgrades only")
        }
    }
}
