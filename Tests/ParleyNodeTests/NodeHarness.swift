import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import NIOCore
import ParleyCore
import ParleyGateway
import ParleyPostgres
import ParleyRuntime
import ParleyWiring
import Testing

/// A node on the shared Redis and PostgreSQL (its own key prefix and schema), served live.
enum NodeHarness {
    static var redisURL: String { ProcessInfo.processInfo.environment["PARLEY_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6380" }
    static var databaseURL: String {
        ProcessInfo.processInfo.environment["PARLEY_TEST_DATABASE_URL"] ?? "postgres://parley@127.0.0.1:5433/parley"
    }

    static func configuration(redisURL: String = redisURL, databaseURL: String = databaseURL,
                              schema: String? = nil) -> NodeConfiguration {
        var configuration = NodeConfiguration(nodeName: "test-node", httpPort: 0, redisURL: redisURL,
                                              redisPrefix: "parley-test:\(UUID().uuidString.prefix(8))",
                                              databaseURL: databaseURL, readinessTimeout: .seconds(1))
        configuration.bcryptCost = 4
        configuration.tokenSecret = "node-test-secret-node-test-secret-012345"
        configuration.batchDelay = .milliseconds(100)
        // The tests' webhook receivers and push service listen on loopback.
        configuration.deliveryPolicy = OutboundAddressPolicy(allowed: [IPNetwork("127.0.0.0/8")!])
        configuration.clamdURL = ProcessInfo.processInfo.environment["PARLEY_TEST_CLAMD_URL"] ?? configuration.clamdURL
        configuration.blobDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-blobs-\(UUID())").path
        if let schema { configuration.databaseURL += "?options=-csearch_path%3D\(schema)" }
        return configuration
    }

    /// Runs `body` against a live node whose database is a fresh schema (on the shared
    /// PostgreSQL unless `databaseURL` names another).
    static func withNode(databaseURL: String = databaseURL, configure: (inout NodeConfiguration) -> Void = { _ in },
                         _ body: @escaping @Sendable (any TestClientProtocol, Node) async throws -> Void) async throws {
        try await withNode(databaseURL: databaseURL, configure: configure) { client, node, _ in try await body(client, node) }
    }

    /// The same, with the node's backends (to look into PostgreSQL behind the node's back).
    static func withNode(databaseURL: String = databaseURL, configure: (inout NodeConfiguration) -> Void = { _ in },
                         _ body: @escaping @Sendable (any TestClientProtocol, Node, Backends) async throws -> Void) async throws {
        let schema = "node_" + UUID().uuidString.prefix(8).lowercased()
        let logger = Logger(label: "test")
        let admin = try Backends.connect(configuration(databaseURL: databaseURL), logger: logger)
        try await admin.postgres.simpleQuery("CREATE SCHEMA \(schema)")
        var configuration = configuration(databaseURL: databaseURL, schema: schema)
        configure(&configuration)
        let backends = try Backends.connect(configuration, logger: logger)
        do {
            try await PostgresMigrator(client: backends.postgres).migrate()
            let node = try await Node.start(configuration: configuration, backends: backends, logger: logger)
            let app = buildApplication(node: node)
            try await app.test(.live) { client in try await body(client, node, backends) }
        } catch {
            await backends.shutdown()
            try? await admin.postgres.simpleQuery("DROP SCHEMA \(schema) CASCADE")
            await admin.shutdown()
            throw error
        }
        await backends.shutdown()
        try await admin.postgres.simpleQuery("DROP SCHEMA \(schema) CASCADE")
        await admin.shutdown()
    }
}

/// A user made through the HTTP API.
struct TestUser: Sendable {
    let id: String
    let token: String
}

extension TestClientProtocol {
    /// A metric of the node's `/metrics`, as an integer (-1 when it is missing).
    func gauge(_ name: String) async throws -> Int {
        let text = try await execute(uri: "/metrics", method: .get) { String(decoding: $0.body.readableBytesView, as: UTF8.self) }
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Int(Double($0.split(separator: " ")[1]) ?? -1) } ?? -1
    }

    /// Sends a JSON request and returns the status and the JSON answer.
    func json(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil, body: JSONValue? = nil,
              raw: String? = nil) async throws -> (HTTPResponse.Status, JSONValue) {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        let bytes = raw.map { Array($0.utf8) } ?? body?.jsonBytes
        return try await execute(uri: uri, method: method, headers: headers, body: bytes.map { ByteBuffer(bytes: $0) }) { response in
            (response.status, try JSONParser.parse(Array(response.body.readableBytesView)))
        }
    }

    /// Adds `member` to `owner`'s workspace by their email, as a client would.
    func addMember(_ member: TestUser, to workspace: String, by owner: TestUser) async throws {
        let email = try await json(.get, "/api/me", token: member.token).1["user"]?["email"] ?? .null
        _ = try await json(.post, "/api/workspaces/\(workspace)/members", token: owner.token, body: ["email": email])
    }

    func signUp(_ name: String) async throws -> TestUser {
        let (status, answer) = try await json(.post, "/api/signup", body: [
            "email": .string("\(name)-\(UUID().uuidString.prefix(6))@example.com"), "display_name": .string(name),
            "password": "a long enough password",
        ])
        #expect(status == .created)
        return TestUser(id: answer["user"]?["id"]?.stringValue ?? "", token: answer["token"]?.stringValue ?? "")
    }
}

/// A Phoenix client over a real WebSocket, speaking the v2 serializer as phoenix.js does.
final class PhoenixSocket: @unchecked Sendable {
    private let inbound: AsyncStream<String>
    private let inboundContinuation: AsyncStream<String>.Continuation
    private let outbound: AsyncStream<String>
    private let outboundContinuation: AsyncStream<String>.Continuation
    private var iterator: AsyncStream<String>.Iterator
    private var ref = 0
    private var task: Task<Void, Never>?

    private let v1: Bool

    init(port: Int, query: String) {
        v1 = query.contains("vsn=1.0.0")
        (inbound, inboundContinuation) = AsyncStream.makeStream()
        (outbound, outboundContinuation) = AsyncStream.makeStream()
        iterator = inbound.makeAsyncIterator()
        let inboundContinuation = inboundContinuation
        let outbound = outbound
        task = Task {
            _ = try? await WebSocketClient.connect(url: "ws://localhost:\(port)/socket/websocket?\(query)",
                                                   logger: Logger(label: "ws")) { messages, writer, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in messages.messages(maxSize: 1 << 20) {
                            if case .text(let text) = message { inboundContinuation.yield(text) }
                        }
                        inboundContinuation.finish()
                    }
                    group.addTask {
                        for await text in outbound { try await writer.write(.text(text)) }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
            inboundContinuation.finish()
        }
    }

    /// Sends `[join_ref, ref, topic, event, payload]`; returns the ref.
    @discardableResult
    func push(_ topic: String, _ event: String, _ payload: JSONValue, joinRef: String? = nil) -> String {
        ref += 1
        let frame: JSONValue = v1
            ? ["join_ref": joinRef.map { .string($0) } ?? .null, "ref": .string(String(ref)), "topic": .string(topic),
               "event": .string(event), "payload": payload]
            : [joinRef.map { .string($0) } ?? .null, .string(String(ref)), .string(topic), .string(event), payload]
        outboundContinuation.yield(frame.jsonText)
        return String(ref)
    }

    func sendRaw(_ text: String) { outboundContinuation.yield(text) }

    /// The first frame `[join_ref, ref, topic, event, payload]` matching `predicate`, in the
    /// order received. (Tests bound their whole run with a timeout.)
    func next(where predicate: (JSONValue) -> Bool = { _ in true }) async throws -> JSONValue {
        if let index = skipped.firstIndex(where: predicate) { return skipped.remove(at: index) }
        while let text = await iterator.next() {
            let frame = Self.asArray(try JSONParser.parse(text))
            if predicate(frame) { return frame }
            skipped.append(frame)
        }
        throw SocketClosed()
    }

    /// Frames read while looking for another, kept for later calls (nothing is dropped).
    private var skipped: [JSONValue] = []

    /// A v1 object frame in the v2 array shape, so tests read both alike.
    static func asArray(_ frame: JSONValue) -> JSONValue {
        guard case .object(let members) = frame else { return frame }
        return [members["join_ref"] ?? .null, members["ref"] ?? .null, members["topic"] ?? .null, members["event"] ?? .null,
                members["payload"] ?? .null]
    }

    struct SocketClosed: Error {}

    /// The reply to `ref`.
    func reply(to ref: String) async throws -> (status: String, response: JSONValue) {
        let frame = try await next { $0.arrayValue?[1] == .string(ref) && $0.arrayValue?[3] == "phx_reply" }
        let payload = frame.arrayValue![4]
        return (payload["status"]?.stringValue ?? "", payload["response"] ?? .null)
    }

    /// The next `event` pushed on `topic`.
    func event(_ event: String, on topic: String) async throws -> JSONValue {
        try await next { $0.arrayValue?[2] == .string(topic) && $0.arrayValue?[3] == .string(event) }.arrayValue![4]
    }

    func close() {
        outboundContinuation.finish()
        task?.cancel()
    }
}
