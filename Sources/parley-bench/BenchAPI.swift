import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ParleyCore

/// The node's HTTP API, for setting a scenario up, and its `/metrics`.
struct BenchAPI: Sendable {
    let baseURL: String
    let http: HTTPClient

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    struct User: Sendable {
        let id: String
        let email: String
        let token: String
    }

    func call(_ method: HTTPMethod, _ path: String, token: String? = nil, body: JSONValue? = nil) async throws -> JSONValue {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body { request.body = .bytes(ByteBuffer(bytes: body.jsonBytes)) }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let answer = (try? JSONParser.parse(Array(bytes.readableBytesView))) ?? .null
        guard (200..<300).contains(Int(response.status.code)) else {
            throw Failure(description: "\(method) \(path): \(response.status.code) \(answer.jsonText)")
        }
        return answer
    }

    func signUp(_ name: String) async throws -> User {
        let email = "\(name)-\(UUID().uuidString.prefix(8).lowercased())@bench.example"
        let answer = try await call(.POST, "/api/signup", body: [
            "email": .string(email), "display_name": .string(name), "password": "bench password 1234",
        ])
        return User(id: answer["user"]?["id"]?.stringValue ?? "", email: email, token: answer["token"]?.stringValue ?? "")
    }

    /// A workspace owned by `owner` with `channels` public channels, every user a member of
    /// the workspace and of every channel. Returns the channel ids.
    func workspace(owner: User, members: [User], channels: Int) async throws -> (workspace: String, channels: [String]) {
        let workspace = try await call(.POST, "/api/workspaces", token: owner.token,
                                       body: ["name": .string("bench \(UUID().uuidString.prefix(6))")])["workspace"]?["id"]?.stringValue ?? ""
        for member in members where member.id != owner.id {
            _ = try await call(.POST, "/api/workspaces/\(workspace)/members", token: owner.token, body: ["email": .string(member.email)])
        }
        var ids: [String] = []
        for n in 0..<channels {
            let channel = try await call(.POST, "/api/workspaces/\(workspace)/channels", token: owner.token,
                                         body: ["name": .string("bench-\(n)")])["channel"]?["id"]?.stringValue ?? ""
            for member in members where member.id != owner.id {
                _ = try await call(.POST, "/api/channels/\(channel)/join", token: member.token)
            }
            ids.append(channel)
        }
        return (workspace, ids)
    }

    /// Users signed up `concurrently` at a time (bcrypt makes each take a while).
    func signUp(count: Int, prefix: String) async throws -> [User] {
        try await withThrowingTaskGroup(of: User.self) { group in
            for n in 0..<count { group.addTask { try await signUp("\(prefix)\(n)") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    /// The node's metrics as name → value (labels dropped; summed if repeated).
    func metrics() async throws -> [String: Double] { try await metrics(at: baseURL) }

    /// The metrics of the node at `url`.
    func metrics(at url: String) async throws -> [String: Double] {
        let response = try await http.execute(HTTPClientRequest(url: url + "/metrics"), timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count >= 2, let value = Double(parts[1]) else { continue }
            let name = parts[0].split(separator: "{").first.map(String.init) ?? String(parts[0])
            values[name, default: 0] += value
        }
        return values
    }

    /// Raw POST (nchan's publisher endpoint).
    func post(url: String, body: String) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await http.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard (200..<300).contains(Int(response.status.code)) else { throw Failure(description: "POST \(url): \(response.status.code)") }
    }
}
