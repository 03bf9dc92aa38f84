import DequeModule
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import ParleyCore

/// The node's HTTP server connections: HTTP/1.1 served by the router (Hummingbird's own
/// request loop), and `GET /socket/websocket` upgraded by swift-nio's WebSocket upgrader to a
/// socket that lives in channel handlers alone. An idle socket costs no task and no async
/// stream — its handler, its session and its outbox — and a received message starts a task
/// only while there is something to hand to the session (`SocketInbox`). Frames out go
/// straight to the channel (`SocketOutbox`).
///
/// An upgrade the node refuses (draining, bad `vsn`, bad token, a path that takes none) is
/// answered here with the error and the connection closed: swift-nio's upgrade handler does
/// not pass the request of a refused upgrade on to the HTTP pipeline.
struct ParleyHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case webSocket
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, APIError)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: Responder
    let node: Node
    private let http1 = HTTP1Channel.Configuration()

    init(responder: @escaping Responder, node: Node) {
        self.responder = responder
        self.node = node
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let node = node
        return channel.eventLoop.makeCompletedFuture {
            // What the upgrade check found (the socket's serializer and user), for the handler;
            // or why it refused.
            let admitted = NIOLoopBoundBox<Result<SocketAdmission, APIError>?>(nil, eventLoop: channel.eventLoop)
            // Whether the first request asked for any upgrade (one nobody takes loses its request too).
            let askedUpgrade = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: SocketRoutes.maximumFrameBytes,
                shouldUpgrade: { channel, head in
                    let promise = channel.eventLoop.makePromise(of: Result<SocketAdmission, APIError>.self)
                    promise.completeWithTask {
                        do {
                            return .success(try await SocketAdmission.check(node: node, uri: head.uri,
                                                                            authorization: head.headers.first(name: "authorization")))
                        } catch {
                            return .failure(error as? APIError ?? APIError.unavailable)
                        }
                    }
                    return promise.futureResult.map { admission in
                        admitted.value = admission
                        if case .success = admission { return HTTPHeaders() }
                        return nil
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard case .success(let admission)? = admitted.value else { throw ChannelError.inappropriateOperationForState }
                        try channel.pipeline.syncOperations.addHandler(
                            NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 1, maxAccumulatedFrameCount: 4096,
                                                        maxAccumulatedFrameSize: SocketRoutes.maximumFrameBytes))
                        try channel.pipeline.syncOperations.addHandler(SocketFrameHandler(node: node, admission: admission, channel: channel))
                        return UpgradeResult.webSocket
                    }
                })
            let http1 = http1
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(
                upgradeConfiguration: NIOTypedHTTPServerUpgradeConfiguration(
                    upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                            try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                            try channel.pipeline.syncOperations.addHandler(
                                HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger))
                            let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                            // An upgrade was asked for and refused: its request is gone (only
                            // the refusal remains to be said).
                            switch admitted.value {
                            case .failure(let refusal)?: return UpgradeResult.refused(http, refusal)
                            case .success?: return UpgradeResult.refused(http, APIError.unavailable)
                            case nil where askedUpgrade.value:
                                return UpgradeResult.refused(http, APIError(.badRequest, "invalid_payload",
                                                                            "no such upgrade here; WebSocket upgrades are taken on /socket/websocket"))
                            case nil: return UpgradeResult.notUpgraded(http)
                            }
                        }
                    }))
            configuration.enablePipelining = false  // HTTP is pipelined by NIOAsyncChannel
            configuration.enableErrorHandling = false  // Hummingbird answers errors
            configuration.enableResponseHeaderValidation = false  // HTTP types validate
            configuration.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            configuration.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            configuration.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            let upgrading = try channel.pipeline.syncOperations.handler(type: NIOTypedHTTPServerUpgradeHandler<UpgradeResult>.self)
            try channel.pipeline.syncOperations.addHandler(UpgradeSniffer(asked: askedUpgrade), position: .before(upgrading))
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .notUpgraded(let http1): await handleHTTP(asyncChannel: http1, logger: logger)
            case .refused(let http1, let refusal): await Self.answer(refusal, on: http1, logger: logger)
            case .webSocket: return  // the channel's handlers hold the socket from here
            }
        } catch {
            logger.debug("connection ended before its first request was read", metadata: ["error": "\(error)"])
        }
    }
}

extension ParleyHTTPChannel {
    /// Answers a refused upgrade with its error (the API's JSON form) and closes.
    static func answer(_ refusal: APIError, on http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, logger: Logger) async {
        let body = ByteBuffer(bytes: refusal.body.jsonBytes)
        do {
            try await http.executeThenClose { _, outbound in
                try await outbound.write(contentsOf: [
                    .head(HTTPResponse(status: refusal.status, headerFields: [
                        .connection: "close", .contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes),
                    ])),
                    .body(body),
                    .end(nil),
                ])
            }
        } catch {
            logger.trace("could not answer a refused upgrade", metadata: ["error": "\(error)"])
        }
    }
}

/// Notes whether the connection's first request asks for an upgrade, then leaves the
/// pipeline: swift-nio's upgrade handler keeps such a request to itself, even when no upgrader
/// takes it (`Upgrade: h2c`, say), so the node answers it with an error instead of serving it.
final class UpgradeSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let asked: NIOLoopBoundBox<Bool>

    init(asked: NIOLoopBoundBox<Bool>) { self.asked = asked }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return context.fireChannelRead(data) }
        asked.value = head.headers.contains(name: "upgrade")
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// What a WebSocket upgrade needs: the serializer it asked for and the user its token names.
/// The checks (and their errors) are the same for the upgrader and for the HTTP route that
/// answers a refused upgrade.
struct SocketAdmission: Sendable {
    let codec: PhoenixCodec
    let user: String?

    static func check(node: Node, uri: String, authorization: String?) async throws -> SocketAdmission {
        let uri = URI(uri)
        guard uri.path == "/socket/websocket" else {
            throw APIError(.notFound, "not_found", "no WebSocket endpoint at \(uri.path)")
        }
        // A draining node takes no new sockets (HAProxy retries a 503 on another node).
        guard !node.draining.isDraining else {
            throw APIError(.serviceUnavailable, "unavailable", "this node is draining; connect again")
        }
        let query = uri.queryParameters
        guard let codec = PhoenixCodec(vsn: query["vsn"].map(String.init)) else {
            throw APIError(.badRequest, "invalid_payload", "unsupported vsn; use 1.0.0 or 2.0.0")
        }
        var token: String?
        if let value = query["token"], !value.isEmpty {
            token = String(value)
        } else if let authorization, authorization.hasPrefix("Bearer ") {
            token = String(authorization.dropFirst(7))
        }
        guard let token else { return SocketAdmission(codec: codec, user: nil) }
        do {
            return SocketAdmission(codec: codec, user: try await node.tokens.verify(token))
        } catch {
            throw APIError(.forbidden, "unauthorized", "the token is not valid")
        }
    }
}

/// A socket's frames on its channel's event loop: messages to the inbox, pings answered,
/// the close handshake, and the end of the socket.
final class SocketFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let inbox: SocketInbox
    private var closing = false

    init(node: Node, admission: SocketAdmission, channel: any Channel) {
        let session = SocketSession(node: node, codec: admission.codec, user: admission.user,
                                    address: channel.remoteAddress?.ipAddress, channel: channel)
        inbox = SocketInbox(session: session, channel: channel, node: node)
    }

    func handlerAdded(context: ChannelHandlerContext) { inbox.opened() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        inbox.session.outbox.touch()
        switch frame.opcode {
        case .text, .binary:
            let bytes = Array(frame.unmaskedData.readableBytesView)
            if inbox.enqueue(frame.opcode == .text ? .text(bytes) : .binary(bytes)) {
                // The session is behind: read no more until it catches up.
                context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            // Answer the client's close with its code, then close the connection.
            guard !closing else {
                context.close(promise: nil)
                return
            }
            closing = true
            var data = frame.unmaskedData
            var answer = context.channel.allocator.buffer(capacity: 2)
            if let code = data.readWebSocketErrorCode() { answer.write(webSocketErrorCode: code) }
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: answer)))
                .whenComplete { _ in channel.close(promise: nil) }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.ended()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The server shuts down: say so and close (a draining node closed its sockets earlier).
        if event is ChannelShouldQuiesceEvent {
            inbox.session.outbox.disconnect(code: .goingAway, reason: "node shutting down")
        } else if case .inputClosed? = event as? ChannelEvent {
            // The client shut its side (the server allows half-closed connections): nothing
            // more will come, so the socket ends.
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Fragments the aggregator refused (too large, too many, out of order): a protocol
        // error. The decoder's own errors are answered before this by NIO's protocol error
        // handler (1009 for a frame over the limit).
        if let refused = error as? NIOWebSocketFrameAggregator.Error {
            let code: WebSocketErrorCode = switch refused {
            case .accumulatedFrameSizeIsTooLarge, .tooManyFragments: .messageTooLarge
            default: .protocolError
            }
            inbox.session.outbox.disconnect(code: code, reason: "\(refused)")
        } else {
            context.close(promise: nil)
        }
    }
}

/// A socket's received messages, handed to its session one at a time and in order by a task
/// that exists only while messages wait (an idle socket has none). When more than
/// `highWater` wait, the handler stops reading the connection until the session is down to
/// `lowWater`.
final class SocketInbox: Sendable {
    enum Item: Sendable {
        case text([UInt8])
        case binary([UInt8])
        case end
    }

    static let highWater = 64
    static let lowWater = 16

    let session: SocketSession
    private let channel: any Channel
    private let node: Node
    private let state = NIOLockedValueBox<(queue: Deque<Item>, running: Bool, paused: Bool)>(([], false, false))

    init(session: SocketSession, channel: any Channel, node: Node) {
        self.session = session
        self.channel = channel
        self.node = node
    }

    /// The socket is open: counted and known to the sweeper.
    func opened() {
        node.metrics.connections.increment()
        node.sockets.add(session.outbox)
    }

    /// Queues a message; true when the handler should stop reading.
    func enqueue(_ item: Item) -> Bool {
        let (start, pause) = state.withLockedValue { state -> (Bool, Bool) in
            state.queue.append(item)
            let start = !state.running
            state.running = true
            let pause = !state.paused && state.queue.count >= Self.highWater
            if pause { state.paused = true }
            return (start, pause)
        }
        if start { Task { await self.drain() } }
        return pause
    }

    /// The connection closed: the session closes after the messages still queued.
    func ended() { _ = enqueue(.end) }

    private func drain() async {
        while true {
            let (next, resume) = state.withLockedValue { state -> (Item?, Bool) in
                let resume = state.paused && state.queue.count <= Self.lowWater
                if resume { state.paused = false }
                guard let item = state.queue.popFirst() else {
                    state.running = false
                    return (nil, resume)
                }
                return (item, resume)
            }
            if resume { channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in } }
            switch next {
            case nil: return
            case .text(let bytes): await session.receive(text: bytes)
            case .binary(let bytes): await session.receive(binary: bytes)
            case .end:
                session.outbox.close()
                await session.close()
                node.sockets.remove(session.outbox)
                node.metrics.connections.decrement()
                return
            }
        }
    }
}
