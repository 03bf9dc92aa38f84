import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ParleyRuntime

/// Builds the node's application: health checks, the HTTP API and the WebSocket endpoint,
/// with the node's services (buffer, channel router) run before the server and stopped after
/// it. `parley serve` runs it and the tests call it too.
public func buildApplication(node: Node) -> some ApplicationProtocol {
    let router = Router(context: ParleyRequestContext.self)
    HealthRoutes(node: node).register(on: router)
    MetricsRoutes(node: node).register(on: router)
    APIRoutes(node: node).register(on: router)
    SocketRoutes(node: node).register(on: router)
    // No server pings: Phoenix clients heartbeat, and the node's SocketSweeper closes a silent
    // socket. A ping loop would be one more task per connection.
    var webSocket = WebSocketServerConfiguration()
    webSocket.autoPing = .disabled
    // hummingbird-websocket's default (16 KiB) would close a socket with 1009 for a body a
    // little over 4,000 emoji long, which deserves a `too_large` reply instead; a frame over
    // the node's message limit (1 MiB) still closes it with 1009.
    webSocket.maxFrameSize = SocketRoutes.maximumFrameBytes
    return Application(router: router, server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: webSocket)),
                       configuration: .init(address: .hostname(node.configuration.httpHost, port: node.configuration.httpPort),
                                            serverName: "parley"),
                       services: node.services, logger: node.logger)
}

/// Hummingbird's WebSocket request context plus the connection's NIO channel, which a
/// socket's outbox writes its frames to directly.
///
/// The channel is held weakly: hummingbird-websocket (2.8.1) keeps a WebSocket route's
/// request context alive in a reference cycle (the context's `webSocket` box holds the
/// context), and a strong channel there kept every closed connection's NIO channel, pipeline
/// and buffers alive — about 5 KiB per connection, found with heaptrack.
extension ParleyRequestContext {
    /// The client's IP address, for per-address limits.
    var clientAddress: String? { remoteAddress?.ipAddress }
}

public struct ParleyRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    /// The client's address (the load balancer's, behind one): the key of per-address limits.
    public let remoteAddress: SocketAddress?
    private let connection: WeakChannel

    /// The connection's channel, while it is open.
    public var channel: (any Channel)? { connection.channel }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress
        connection = WeakChannel(source.channel)
    }

    private final class WeakChannel: Sendable {
        weak let channel: (any Channel)?
        init(_ channel: any Channel) { self.channel = channel }
    }
}
