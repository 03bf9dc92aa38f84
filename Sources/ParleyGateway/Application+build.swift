import Hummingbird
import HummingbirdCore
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
    // WebSockets are upgraded below the router, by swift-nio's upgrader, into channel handlers
    // (ParleyHTTPChannel): no task per idle connection.
    return Application(router: router,
                       server: HTTPServerBuilder { responder in ParleyHTTPChannel(responder: responder, node: node) },
                       configuration: .init(address: .hostname(node.configuration.httpHost, port: node.configuration.httpPort),
                                            serverName: "parley"),
                       services: node.services, logger: node.logger)
}

extension ParleyRequestContext {
    /// The client's IP address, for per-address limits.
    var clientAddress: String? { remoteAddress?.ipAddress }
}

public struct ParleyRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The client's address (the load balancer's, behind one): the key of per-address limits.
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
