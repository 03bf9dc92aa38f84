import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import ParleyCore
import ParleyPostgres
import ParleyRuntime
import ParleyTestSupport
import Testing

/// Issue 19: uploads on a live node with the real tools — ClamAV's clamd (`cluster/services`
/// runs it on a test database: EICAR and clamav-testfiles), libvips, ffmpeg.
@Suite("Uploads on a live node", .serialized)
struct UploadTests {
    /// Media made by ffmpeg for the test.
    static func media() async throws -> (png: [UInt8], jpeg: [UInt8], mp4: [UInt8]) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("parley-media-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=640x480:rate=10"]
        try await TestServices.run("/usr/bin/env", ["ffmpeg"] + source + ["-frames:v", "1", "\(folder)/a.png"])
        try await TestServices.run("/usr/bin/env", ["ffmpeg"] + source + ["-frames:v", "1", "\(folder)/a.jpg"])
        try await TestServices.run("/usr/bin/env", ["ffmpeg"] + source + ["-t", "2", "-pix_fmt", "yuv420p", "\(folder)/a.mp4"])
        func read(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name)"))) }
        return (try read("a.png"), try read("a.jpg"), try read("a.mp4"))
    }

    static let eicar = Array(#"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"#.utf8)

    /// A multipart/form-data upload of `bytes` as `type`.
    static func upload(_ client: any TestClientProtocol, _ bytes: [UInt8], type: String, name: String = "file.bin", workspace: String,
                       token: String, priority: Int? = nil) async throws -> (HTTPResponse.Status, JSONValue) {
        let boundary = "parley-\(UUID().uuidString)"
        var body: [UInt8] = []
        func add(_ text: String) { body += Array(text.utf8) }
        add("--\(boundary)\r\nContent-Disposition: form-data; name=\"workspace_id\"\r\n\r\n\(workspace)\r\n")
        if let priority { add("--\(boundary)\r\nContent-Disposition: form-data; name=\"priority\"\r\n\r\n\(priority)\r\n") }
        add("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\nContent-Type: \(type)\r\n\r\n")
        body += bytes
        add("\r\n--\(boundary)--\r\n")
        let headers: HTTPFields = [.contentType: "multipart/form-data; boundary=\(boundary)", .authorization: "Bearer \(token)"]
        return try await client.execute(uri: "/api/uploads", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { response in
            (response.status, (try? JSONParser.parse(Array(response.body.readableBytesView))) ?? .null)
        }
    }

    /// `GET` of a file or thumbnail: status, content type, bytes.
    static func download(_ client: any TestClientProtocol, _ uri: String, token: String) async throws -> (HTTPResponse.Status, String, [UInt8]) {
        try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
            (response.status, response.headers[.contentType] ?? "", Array(response.body.readableBytesView))
        }
    }

    /// The upload once its processing ended.
    static func finished(_ client: any TestClientProtocol, _ id: String, token: String) async throws -> JSONValue {
        var upload: JSONValue = .null
        _ = await TestServices.eventually(within: .seconds(30)) {
            upload = (try? await client.json(.get, "/api/uploads/\(id)", token: token).1["upload"]) ?? .null
            return ["ready", "infected", "failed", "cancelled"].contains(upload["status"]?.stringValue ?? "")
        }
        return upload
    }

    @Test func scannedAndThumbnailedFilesAreServedOnlyToMembersAndInfectedOnesNever() async throws {
        let media = try await Self.media()
        try await withTimeout(.seconds(90)) {
            try await NodeHarness.withNode(configure: { $0.jobPoll = .milliseconds(50); $0.uploadPolicy.maximumBytes = 1 << 20 }) { client, node, backends in
                let (alice, bob, channel, workspace) = try await ChatTests.room(client)
                let carol = try await client.signUp("carol")
                let stranger = try await client.signUp("stranger")
                for member in [bob, carol] { try await client.addMember(member, to: workspace, by: alice) }
                _ = try await client.json(.post, "/api/channels/\(channel)/join", token: bob.token)
                let socket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(alice.token)")
                defer { socket.close() }
                #expect(try await socket.reply(to: socket.push("user:\(alice.id)", "phx_join", [:], joinRef: "1")).status == "ok")

                var ids: [String: String] = [:]
                for (name, bytes, type) in [("a.png", media.png, "image/png"), ("a.jpg", media.jpeg, "image/jpeg"), ("café 1.png", media.png, "image/png"),
                                            ("a.mp4", media.mp4, "video/mp4"), ("eicar.txt", Self.eicar, "text/plain")] {
                    let (status, answer) = try await Self.upload(client, bytes, type: type, name: name, workspace: workspace, token: alice.token)
                    #expect(status == .accepted && answer["upload"]?["status"] == "queued", "\(name): \(answer)")
                    ids[name] = answer["upload"]?["id"]?.stringValue ?? ""
                }
                for name in ["a.png", "a.jpg", "a.mp4"] {
                    let upload = try await Self.finished(client, ids[name]!, token: alice.token)
                    #expect(upload["status"] == "ready" && upload["thumbnail"] == true, "\(name): \(upload)")
                    let (status, type, bytes) = try await Self.download(client, "/api/uploads/\(ids[name]!)/thumbnail", token: alice.token)
                    #expect(status == .ok && type == "image/jpeg" && bytes.starts(with: [0xFF, 0xD8, 0xFF]), "\(name) thumbnail")
                }
                // A name beyond ASCII goes back as RFC 6266's filename*, with an ASCII fallback.
                #expect(try await Self.finished(client, ids["café 1.png"]!, token: alice.token)["status"] == "ready")
                let named = try await client.execute(uri: "/api/uploads/\(ids["café 1.png"]!)/content", method: .get,
                                                     headers: [.authorization: "Bearer \(alice.token)"]) { $0.headers[.contentDisposition] }
                #expect(named == #"attachment; filename="caf_ 1.png"; filename*=UTF-8''caf%C3%A9%201.png"#, "\(named ?? "")")
                let infected = try await Self.finished(client, ids["eicar.txt"]!, token: alice.token)
                // (clamd adds `.UNOFFICIAL` to signatures of a database nobody signed.)
                #expect(infected["status"] == "infected" && infected["threat"]?.stringValue?.hasPrefix("Parley.Test.EICAR") == true, "\(infected)")
                let (refused, _, _) = try await Self.download(client, "/api/uploads/\(ids["eicar.txt"]!)/content", token: alice.token)
                #expect(refused == .forbidden, "an infected file is never served, not even to its uploader")
                let sha = infected["sha256"]?.stringValue ?? ""
                #expect(!FileManager.default.fileExists(atPath: node.uploads.blobs.path(sha256: sha)), "quarantined")
                // The uploader heard every step on user:{id}.
                var steps: [String] = []
                while !steps.contains("infected") || steps.filter({ $0 == "ready" }).count < 4 {
                    steps.append(try await socket.event("upload_status", on: "user:\(alice.id)")["status"]?.stringValue ?? "")
                }
                #expect(steps.filter { $0 == "scanning" }.count == 5 && steps.filter { $0 == "thumbnailing" }.count == 4, "\(steps)")

                // Posted with a message: the channel's members may read it, nobody else.
                let bobSocket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(bob.token)")
                defer { bobSocket.close() }
                #expect(try await bobSocket.reply(to: bobSocket.push("channel:\(channel)", "phx_join", [:], joinRef: "1")).status == "ok")
                let (posted, message) = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token,
                                                              body: ["body": "pictures", "attachments": [.string(ids["a.png"]!), .string(ids["a.mp4"]!)]])
                #expect(posted == .created && message["message"]?["attachments"]?.arrayValue == [.string(ids["a.png"]!), .string(ids["a.mp4"]!)]
                        && message["attachments"]?.arrayValue?.count == 2, "\(message)")
                let created = try await bobSocket.event("message_created", on: "channel:\(channel)")
                #expect(created["attachments"]?.arrayValue == [.string(ids["a.png"]!), .string(ids["a.mp4"]!)], "\(created)")
                let (bobs, bobsType, bobsBytes) = try await Self.download(client, "/api/uploads/\(ids["a.png"]!)/content", token: bob.token)
                #expect(bobs == .ok && bobsType == "image/png" && bobsBytes == media.png)
                let disposition = try await client.execute(uri: "/api/uploads/\(ids["a.png"]!)/content", method: .get,
                                                           headers: [.authorization: "Bearer \(bob.token)"]) { $0.headers[.contentDisposition] }
                #expect(disposition == #"attachment; filename="a.png"; filename*=UTF-8''a.png"#)
                #expect(try await Self.download(client, "/api/uploads/\(ids["a.mp4"]!)/thumbnail", token: bob.token).0 == .ok)
                #expect(try await Self.download(client, "/api/uploads/\(ids["a.jpg"]!)/content", token: bob.token).0 == .notFound,
                        "not posted anywhere: the uploader's alone")
                #expect(try await Self.download(client, "/api/uploads/\(ids["a.png"]!)/content", token: carol.token).0 == .notFound,
                        "a workspace member outside the channel")
                #expect(try await Self.download(client, "/api/uploads/\(ids["a.png"]!)/thumbnail", token: stranger.token).0 == .notFound)
                _ = try await client.json(.post, "/api/channels/\(channel)/join", token: carol.token)
                #expect(try await Self.download(client, "/api/uploads/\(ids["a.png"]!)/content", token: carol.token).0 == .ok, "once she joins")
                // Over the WebSocket too; the message's stored row carries its attachments.
                let aliceChannel = try await socket.reply(to: socket.push("channel:\(channel)", "phx_join", [:], joinRef: "2"))
                #expect(aliceChannel.status == "ok")
                let sent = try await socket.reply(to: socket.push("channel:\(channel)", "new_message",
                                                                  ["body": "one more", "attachments": [.string(ids["a.jpg"]!)]], joinRef: "2"))
                #expect(sent.status == "ok", "\(sent.response)")
                #expect(try await Self.download(client, "/api/uploads/\(ids["a.jpg"]!)/content", token: bob.token).0 == .ok)
                let (_, listed) = try await client.json(.get, "/api/channels/\(channel)/attachments", token: carol.token)
                #expect(listed["attachments"]?.arrayValue?.count == 3)
                #expect(await TestServices.eventually {
                    let rows = try? await backends.postgres.query("""
                        SELECT attachments::text FROM messages WHERE channel_id = $1::uuid AND attachments IS NOT NULL ORDER BY seq
                        """, channel)
                    return rows?.count == 2
                }, "both messages are stored with their attachments")
                let (_, history) = try await client.json(.get, "/api/channels/\(channel)/messages", token: carol.token)
                #expect(history["messages"]?.arrayValue?.last?["attachments"]?.arrayValue == [.string(ids["a.jpg"]!)])

                // Bad input gets its code; nothing is stored for it.
                let (attachInfected, answer) = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token,
                                                                     body: ["body": "x", "attachments": [.string(ids["eicar.txt"]!)]])
                #expect(attachInfected == .badRequest && answer["error"]?["code"] == "invalid_payload")
                #expect(try await client.json(.post, "/api/channels/\(channel)/messages", token: bob.token,
                                              body: ["body": "x", "attachments": [.string(ids["a.jpg"]!)]]).0 == .badRequest,
                        "someone else's upload")
                let cases: [([UInt8], String, HTTPResponse.Status, String)] = [
                    (Array("not a png".utf8), "image/png", .badRequest, "invalid_payload"),
                    (media.png, "application/x-msdownload", .badRequest, "invalid_payload"),
                    ([UInt8](repeating: 65, count: (1 << 20) + 1), "text/plain", .contentTooLarge, "too_large"),
                ]
                for (bytes, type, status, code) in cases {
                    let (got, answer) = try await Self.upload(client, bytes, type: type, workspace: workspace, token: alice.token)
                    #expect(got == status && answer["error"]?["code"]?.stringValue == code, "\(type): \(answer)")
                }
                #expect(try await Self.upload(client, media.png, type: "image/png", workspace: workspace, token: stranger.token).0 == .forbidden)
                #expect(try await client.json(.post, "/api/uploads", token: alice.token, body: ["file": "x"]).0 == .badRequest, "not multipart")
                // Malformed forms, read as they stream in.
                let boundary = "parley-form"
                func part(_ name: String, filename: String? = nil, _ content: String) -> String {
                    "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"" + (filename.map { "; filename=\"\($0)\"\r\nContent-Type: text/plain" } ?? "")
                        + "\r\n\r\n\(content)\r\n"
                }
                let malformed: [(String, String)] = [
                    (part("workspace_id", workspace) + part("file", filename: "a.txt", "no end"), "a file without its closing boundary"),
                    (part("workspace_id", workspace) + part("file", filename: "a.txt", "one") + part("file", filename: "b.txt", "two")
                        + "--\(boundary)--\r\n", "two files"),
                    (part("workspace_id", String(repeating: "x", count: 2000)) + part("file", filename: "a.txt", "hi") + "--\(boundary)--\r\n",
                     "a field over 1 KiB"),
                ]
                for (body, what) in malformed {
                    let (status, answer) = try await client.execute(
                        uri: "/api/uploads", method: .post,
                        headers: [.contentType: "multipart/form-data; boundary=\(boundary)", .authorization: "Bearer \(alice.token)"],
                        body: ByteBuffer(string: String(body.dropLast(what.hasPrefix("a file without") ? 2 : 0)))) { response in
                        (response.status, (try? JSONParser.parse(Array(response.body.readableBytesView))) ?? .null)
                    }
                    #expect(status == .badRequest && answer["error"]?["code"] == "invalid_payload", "\(what): \(status) \(answer)")
                }
                // A file of the largest size goes to disk as it arrives and comes back whole.
                let largest = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) & 0x3f | 0x40 }
                let (accepted, big) = try await Self.upload(client, largest, type: "text/plain", name: "largest.txt", workspace: workspace,
                                                            token: alice.token)
                #expect(accepted == .accepted && big["upload"]?["size"] == .int(1 << 20), "\(big)")
                let bigID = big["upload"]?["id"]?.stringValue ?? ""
                #expect(try await Self.finished(client, bigID, token: alice.token)["status"] == "ready")
                let (fetched, _, fetchedBytes) = try await Self.download(client, "/api/uploads/\(bigID)/content", token: alice.token)
                #expect(fetched == .ok && fetchedBytes == largest, "streamed back byte for byte")
                // No refused upload left anything behind.
                let incoming = try FileManager.default.contentsOfDirectory(atPath: node.uploads.blobs.root + "/incoming")
                #expect(incoming.isEmpty, "temporary files of refused uploads: \(incoming)")
            }
        }
    }

    /// A node that runs five upload jobs at once, all five busy with slow pictures, is sent
    /// twenty more and then one with a higher priority: never more than five in progress
    /// (sampled, and the node's high-water mark); the urgent one starts before those queued
    /// ahead of it; a queued upload and a running one are cancelled.
    @Test func atMostFiveAtOnceByPriorityAndCancelStopsThem() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("parley-big-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A small picture (quick to upload and to process), and one of a single colour whose
        // file is tiny but whose thumbnail takes a while (a 256-megapixel lossless WebP of 10 KB:
        // over a second each).
        try await TestServices.run("/usr/bin/env", ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64",
                                                    "-frames:v", "1", "\(folder)/picture.png"])
        try await TestServices.run("/usr/bin/env", ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=16000x16000",
                                                    "-frames:v", "1", "-c:v", "libwebp", "-lossless", "1", "\(folder)/big.webp"])
        let picture = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(folder)/picture.png")))
        let big = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(folder)/big.webp")))
        try await withTimeout(.seconds(150)) {
            try await NodeHarness.withNode(configure: { $0.jobPoll = .milliseconds(50); $0.uploadPolicy.maximumBytes = 8 << 20 }) { client, _, backends in
                let (alice, _, _, workspace) = try await ChatTests.room(client)
                @Sendable func inProgress() async -> Int {
                    let rows = try? await backends.postgres.query("SELECT count(*)::bigint FROM uploads WHERE status IN ('scanning', 'thumbnailing')")
                    return Int((try? rows?.first?.decode(Int64.self, at: 0)) ?? 0)
                }
                /// `count` uploads of `bytes` at once, each accepted.
                func uploadAtOnce(_ count: Int, _ bytes: [UInt8], type: String, name: @escaping @Sendable (Int) -> String) async throws {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for index in 0..<count {
                            group.addTask {
                                let (status, _) = try await Self.upload(client, bytes, type: type, name: name(index),
                                                                        workspace: workspace, token: alice.token)
                                #expect(status == .accepted)
                            }
                        }
                        try await group.waitForAll()
                    }
                }
                // Five slow ones take every slot.
                try await uploadAtOnce(5, big, type: "image/webp") { "slow-\($0).webp" }
                #expect(await TestServices.eventually(within: .seconds(20)) { await inProgress() == 5 }, "the five slots are busy")
                try await uploadAtOnce(20, picture, type: "image/png") { "picture-\($0).png" }
                let (urgent, _) = try await Self.upload(client, picture, type: "image/png", name: "urgent.png", workspace: workspace,
                                                        token: alice.token, priority: 9)
                #expect(urgent == .accepted)
                let waiting = Set(try await backends.postgres.query("""
                    SELECT filename FROM uploads WHERE status = 'queued' AND priority = 0 AND filename LIKE 'picture-%'
                    """).map { try $0.decode(String.self, at: 0) })
                let (_, doomed) = try await Self.upload(client, picture, type: "image/png", name: "doomed.png", workspace: workspace,
                                                        token: alice.token)
                let doomedID = doomed["upload"]?["id"]?.stringValue ?? ""
                let (cancelled, answer) = try await client.json(.post, "/api/uploads/\(doomedID)/cancel", token: alice.token)
                #expect(cancelled == .ok && answer["upload"]?["status"] == "cancelled", "a queued upload: \(answer)")
                var most = 0
                _ = await TestServices.eventually(within: .seconds(90)) {
                    let counts = try? await backends.postgres.query("""
                        SELECT count(*) FILTER (WHERE status IN ('scanning', 'thumbnailing')),
                               count(*) FILTER (WHERE status IN ('queued', 'scanning', 'thumbnailing')) FROM uploads
                        """)
                    most = max(most, Int((try? counts?.first?.decode(Int64.self, at: 0)) ?? 0))
                    return ((try? counts?.first?.decode(Int64.self, at: 1)) ?? 1) == 0
                }
                let metrics = try await client.execute(uri: "/metrics", method: .get) { String(decoding: $0.body.readableBytesView, as: UTF8.self) }
                #expect(metrics.contains(#"parley_jobs_most_running{queue="uploads"} 5"#), "the node's high-water mark is 5")
                #expect(most <= 5, "in progress at once, sampled from PostgreSQL: \(most)")
                let order = try await backends.postgres.query("""
                    SELECT filename FROM uploads WHERE started_at IS NOT NULL ORDER BY started_at, filename
                    """).map { try $0.decode(String.self, at: 0) }
                let rank = order.firstIndex(of: "urgent.png") ?? order.count
                let overtaken = order.prefix(rank).filter { waiting.contains($0) }
                #expect(order.count == 26 && !order.contains("doomed.png"), "every upload started but the cancelled one: \(order.count)")
                #expect(waiting.count >= 5, "enough still queued when the urgent one came to show the order: \(waiting.count)")
                #expect(overtaken.count <= 4,
                        "of the \(waiting.count) queued before it, \(overtaken.count) started before the urgent one (at most the others claimed with it)")
                print("uploads: at most \(most) in progress at once (sampled); urgent started \(rank + 1)th of \(order.count), "
                      + "ahead of \(waiting.count - overtaken.count) of the \(waiting.count) queued before it")

                // A running upload is cancelled: its run stops, it never becomes ready.
                let (_, running) = try await Self.upload(client, big, type: "image/webp", name: "big.webp", workspace: workspace, token: alice.token)
                let bigID = running["upload"]?["id"]?.stringValue ?? ""
                #expect(await TestServices.eventually(within: .seconds(20)) {
                    (try? await client.json(.get, "/api/uploads/\(bigID)", token: alice.token).1["upload"]?["status"]) == "thumbnailing"
                })
                let (stopped, stoppedAnswer) = try await client.json(.post, "/api/uploads/\(bigID)/cancel", token: alice.token)
                #expect(stopped == .ok && stoppedAnswer["upload"]?["status"] == "cancelled", "\(stoppedAnswer)")
                try await Task.sleep(for: .seconds(2))
                let after = try await client.json(.get, "/api/uploads/\(bigID)", token: alice.token).1["upload"]
                #expect(after?["status"] == "cancelled" && after?["thumbnail"] == false, "\(after ?? .null)")
                let lost = try await client.execute(uri: "/metrics", method: .get) { String(decoding: $0.body.readableBytesView, as: UTF8.self) }
                #expect(lost.contains(#"parley_jobs_total{queue="uploads",outcome="lost"} 1"#), "the run was stopped")
                #expect(try await client.json(.post, "/api/uploads/\(bigID)/cancel", token: alice.token).0 == .conflict)
            }
        }
    }
}
