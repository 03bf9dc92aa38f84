import Foundation
import Glibc
import HummingbirdTesting
import ParleyCore
import ParleyDelivery
import ParleyRuntime
import ParleyTestSupport
import Testing

/// The receivers of `Tests/clients/notify_sinks.py` (a webhook endpoint that checks the HMAC
/// signature, an aiosmtpd SMTP server) as a process of their own.
final class NotificationSinks: Sendable {
    let http: Int
    let smtp: Int
    let secret: String
    /// The push service's browser subscription, as `PushSubscription.toJSON()` gives it.
    let subscription: JSONValue
    private let log: String
    private let pid: pid_t

    private init(http: Int, smtp: Int, secret: String, subscription: JSONValue, log: String, pid: pid_t) {
        (self.http, self.smtp, self.secret, self.subscription, self.log, self.pid) = (http, smtp, secret, subscription, log, pid)
    }

    static func start(failFirst: Int = 0) async throws -> NotificationSinks {
        let root = TestServices.repositoryRoot
        let python = root.appendingPathComponent(".venv/bin/python").path
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("parley-sinks-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let secret = "webhook-secret-\(UUID().uuidString.prefix(8))"
        let pid = try TestServices.spawn(python, [root.appendingPathComponent("Tests/clients/notify_sinks.py").path,
                                                  "--ready", folder + "/ready", "--log", folder + "/log", "--secret", secret,
                                                  "--fail-first", "\(failFirst)"])
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: folder + "/ready", encoding: .utf8), let ports = try? JSONParser.parse(text),
               let http = ports["http"]?.intValue, let smtp = ports["smtp"]?.intValue {
                return NotificationSinks(http: Int(http), smtp: Int(smtp), secret: secret, subscription: ports["subscription"] ?? .null,
                                         log: folder + "/log", pid: pid)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        Glibc.kill(pid, SIGKILL)
        struct NotStarted: Error, CustomStringConvertible { let description = "notify_sinks.py did not start (is aiosmtpd in .venv?)" }
        throw NotStarted()
    }

    var webhookURL: String { "http://127.0.0.1:\(http)/hook" }

    /// Every delivery so far (`kind`: webhook | email), duplicates included.
    func deliveries() -> [JSONValue] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
    }

    func stop() {
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }
}

/// Issue 19: notifications on a live node — in-app on `user:{id}`, a signed webhook, an email
/// through a real SMTP server — with the recipient's reads, mutes and do-not-disturb.
@Suite("Notifications on a live node")
struct NotificationTests {
    static func configure(_ sinks: NotificationSinks, window: Duration) -> (inout NodeConfiguration) -> Void {
        { configuration in
            configuration.notificationWindow = window
            configuration.jobPoll = .milliseconds(50)
            configuration.smtpURL = "smtp://127.0.0.1:\(sinks.smtp)"
            configuration.notificationAttempts = 4
        }
    }

    /// A channel of alice's that bob and carol joined.
    static func room(_ client: any TestClientProtocol) async throws -> (alice: TestUser, bob: TestUser, carol: TestUser, channel: String) {
        let (alice, bob, channel, workspace) = try await ChatTests.room(client)
        let carol = try await client.signUp("carol")
        for member in [bob, carol] {
            try await client.addMember(member, to: workspace, by: alice)
            _ = try await client.json(.post, "/api/channels/\(channel)/join", token: member.token)
        }
        return (alice, bob, carol, channel)
    }

    @Test func aMentionReachesTheSocketTheWebhookAndTheMailboxOnceEach() async throws {
        let sinks = try await NotificationSinks.start(failFirst: 2)
        defer { sinks.stop() }
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode(configure: Self.configure(sinks, window: .milliseconds(300))) { client, _ in
                let (alice, bob, carol, channel) = try await Self.room(client)
                let (status, settings) = try await client.json(.put, "/api/notifications/settings", token: bob.token,
                                                               body: ["webhook_url": .string(sinks.webhookURL),
                                                                      "webhook_secret": .string(sinks.secret), "email": true])
                #expect(status == .ok && settings["settings"]?["webhook_secret_set"] == true, "\(settings)")
                let socket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(carol.token)")
                defer { socket.close() }
                let joined = try await socket.reply(to: socket.push("user:\(carol.id)", "phx_join", [:], joinRef: "1"))
                #expect(joined.status == "ok" && joined.response["unread"] == 0)
                let other = try await socket.reply(to: socket.push("user:\(bob.id)", "phx_join", [:], joinRef: "2"))
                #expect(other.status == "error" && other.response["reason"] == "unauthorized", "only one's own user topic")

                _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token,
                                          body: ["body": "hi @bob and @carol"])
                let pushed = try await socket.event("notification", on: "user:\(carol.id)")
                #expect(pushed["items"]?.arrayValue?.first?["reason"] == "mention" && pushed["unread"] == 1, "\(pushed)")
                #expect(pushed["title"] == "alice mentioned you in #general")

                // Bob's webhook: refused twice (503), then delivered, signed; and his mail.
                #expect(await TestServices.eventually(within: .seconds(20)) {
                    Set(sinks.deliveries().compactMap { $0["kind"]?.stringValue }) == ["webhook", "email"]
                }, "\(sinks.deliveries())")
                try await Task.sleep(for: .milliseconds(500))
                let deliveries = sinks.deliveries()
                let hooks = deliveries.filter { $0["kind"] == "webhook" }
                #expect(hooks.count == 1 && hooks[0]["signature_valid"] == true, "\(hooks)")
                #expect(hooks.first?["key"]?.stringValue?.hasPrefix("notification-") == true)
                #expect(hooks.first?["body"]?["user"]?.stringValue == bob.id)
                #expect(hooks.first?["body"]?["delivery_attempt"] == 3, "after two 503s")
                let mails = deliveries.filter { $0["kind"] == "email" }
                let bobEmail = try await client.json(.get, "/api/me", token: bob.token).1["user"]?["email"]?.stringValue ?? ""
                #expect(mails.count == 1 && mails.first?["to"]?.arrayValue?.first?.stringValue == bobEmail, "\(mails)")
                #expect(mails.first?["subject"] == "alice mentioned you in #general")
                #expect(mails.first?["text"]?.stringValue?.contains("hi @bob and @carol") == true)

                let (_, listed) = try await client.json(.get, "/api/notifications", token: bob.token)
                #expect(listed["unread"] == 1 && listed["notifications"]?.arrayValue?.count == 1)
                let (_, marked) = try await client.json(.post, "/api/notifications/read", token: bob.token, body: [:])
                #expect(marked["marked"] == 1 && marked["unread"] == 0)
                let metrics = try await client.execute(uri: "/metrics", method: .get) { String(decoding: $0.body.readableBytesView, as: UTF8.self) }
                #expect(metrics.contains(#"parley_notifications_sent_total{kind="webhook"} 1"#), "metrics")
                #expect(metrics.contains(#"parley_notifications_sent_total{kind="in_app"} 2"#))

                // Bad settings get their codes.
                // (This node allows 127.0.0.0/8 for the tests' receivers; the metadata service and
                // IPv6 loopback stay out of reach.)
                for (body, field) in [(["webhook_url": "ftp://example.com"], "webhook_url"), (["webhook_secret": "short"], "webhook_secret"),
                                      (["webhook_url": "http://169.254.169.254/latest/meta-data/"], "webhook_url"),
                                      (["webhook_url": "http://[::1]:8080/hook"], "webhook_url"),
                                      (["email": "yes"], "email"), (["dnd_until": -1], "dnd_until")] as [(JSONValue, String)] {
                    let (status, answer) = try await client.json(.put, "/api/notifications/settings", token: bob.token, body: body)
                    #expect(status == .badRequest && answer["error"]?["code"] == "invalid_payload", "\(field): \(answer)")
                }
                #expect(try await client.json(.get, "/api/notifications?limit=0", token: bob.token).0 == .badRequest)
                #expect(try await client.json(.get, "/api/notifications").0 == .unauthorized)
            }
        }
    }

    @Test func readMutedAndDoNotDisturbAreRespected() async throws {
        let sinks = try await NotificationSinks.start()
        defer { sinks.stop() }
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode(configure: Self.configure(sinks, window: .milliseconds(1500))) { client, _ in
                let (alice, bob, carol, channel) = try await Self.room(client)
                // Bob reads the channel before his digest goes out: nothing is sent.
                _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token, body: ["body": "@bob look"])
                let socket = PhoenixSocket(port: client.port!, query: "vsn=2.0.0&token=\(bob.token)")
                defer { socket.close() }
                let joined = try await socket.reply(to: socket.push("channel:\(channel)", "phx_join", [:], joinRef: "1"))
                let last = joined.response["last_seq"]?.intValue ?? 0
                #expect(try await socket.reply(to: socket.push("channel:\(channel)", "mark_read", ["seq": .int(last)], joinRef: "1"))
                    .status == "ok")
                // Carol muted the channel: @channel does not reach her, a mention by name does.
                #expect(try await client.json(.put, "/api/channels/\(channel)/mute", token: carol.token, body: ["muted": true]).0 == .ok)
                _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token, body: ["body": "@channel hey"])
                _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token, body: ["body": "and @carol"])
                #expect(await TestServices.eventually {
                    (try? await client.json(.get, "/api/notifications", token: carol.token).1["unread"]) == 1
                })
                let (_, carols) = try await client.json(.get, "/api/notifications", token: carol.token)
                #expect(carols["notifications"]?.arrayValue?.first?["items"]?.arrayValue?.compactMap { $0["excerpt"]?.stringValue } == ["and @carol"])
                // Bob gets only the @channel message (the one he read is dropped from his digest).
                #expect(await TestServices.eventually {
                    (try? await client.json(.get, "/api/notifications", token: bob.token).1["unread"]) == 1
                })
                let (_, bobs) = try await client.json(.get, "/api/notifications", token: bob.token)
                #expect(bobs["notifications"]?.arrayValue?.first?["items"]?.arrayValue?.compactMap { $0["excerpt"]?.stringValue } == ["@channel hey"])

                // Do not disturb for 8 s: the mention waits for its end (checked once its window
                // has passed, while the DND still holds).
                let until = Int64(Date().timeIntervalSince1970 * 1000) + 8000
                _ = try await client.json(.put, "/api/notifications/settings", token: bob.token, body: ["dnd_until": .int(until)])
                _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token, body: ["body": "@bob urgent"])
                try await Task.sleep(for: .milliseconds(3000))
                let during = try await client.json(.get, "/api/notifications", token: bob.token).1["unread"]
                if Int64(Date().timeIntervalSince1970 * 1000) < until - 500 {
                    #expect(during == 1, "held during DND")
                }
                #expect(await TestServices.eventually(within: .seconds(20)) {
                    (try? await client.json(.get, "/api/notifications", token: bob.token).1["unread"]) == 2
                }, "delivered after it")
                #expect(Int64(Date().timeIntervalSince1970 * 1000) >= until)
            }
        }
    }

    /// Web Push: the push service (played by `notify_sinks.py`) decrypts the payload with
    /// `http_ece` and the subscription's own private key, and verifies the VAPID token; a
    /// subscription whose push service answers 410 is forgotten.
    @Test func aWebPushDecryptsWithAnIndependentLibraryAndItsVAPIDTokenVerifies() async throws {
        let sinks = try await NotificationSinks.start()
        defer { sinks.stop() }
        let vapid = WebPushSender.newKey()
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode(configure: {
                Self.configure(sinks, window: .milliseconds(200))(&$0)
                $0.vapidPrivateKey = vapid.privateKey
                $0.vapidSubject = "mailto:ops@example.com"
            }) { client, _, backends in
                let (alice, bob, _, channel) = try await Self.room(client)
                let (_, key) = try await client.json(.get, "/api/push/key")
                #expect(key["public_key"]?.stringValue == vapid.publicKey)
                let (subscribed, answer) = try await client.json(.post, "/api/push/subscriptions", token: bob.token, body: sinks.subscription)
                #expect(subscribed == .created, "\(answer)")
                var gone = sinks.subscription
                if case .object(var members) = gone {
                    members["endpoint"] = .string("http://127.0.0.1:\(sinks.http)/push/gone")
                    gone = .object(members)
                }
                #expect(try await client.json(.post, "/api/push/subscriptions", token: bob.token, body: gone).0 == .created)
                for (body, field) in [(["endpoint": "x", "keys": ["p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"]], "p256dh"),
                                      (["endpoint": sinks.subscription["endpoint"] ?? "", "keys": ["p256dh": sinks.subscription["keys"]?["p256dh"] ?? "", "auth": "AAAA"]], "auth")]
                    as [(JSONValue, String)] {
                    let (status, refused) = try await client.json(.post, "/api/push/subscriptions", token: bob.token, body: body)
                    #expect(status == .badRequest && refused["error"]?["code"] == "invalid_payload", "\(field): \(refused)")
                }

                _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token, body: ["body": "@bob push me"])
                #expect(await TestServices.eventually(within: .seconds(20)) { sinks.deliveries().contains { $0["kind"] == "push" } })
                let push = try #require(sinks.deliveries().first { $0["kind"] == "push" })
                #expect(push["decrypt_error"] == nil, "\(push)")
                #expect(push["payload"]?["title"] == "alice mentioned you in #general", "decrypted: \(push)")
                #expect(push["payload"]?["body"] == "@bob push me")
                #expect(push["vapid_valid"] == true && push["k"]?.stringValue == vapid.publicKey, "\(push)")
                #expect(push["claims"]?["sub"] == "mailto:ops@example.com")
                #expect(push["content_encoding"] == "aes128gcm" && push["urgency"] == "high")
                // The gone subscription was forgotten; the live one stays.
                #expect(await TestServices.eventually {
                    (try? await backends.postgres.query("SELECT count(*)::bigint FROM push_subscriptions")[0].decode(Int64.self, at: 0)) == 1
                })
                let metrics = try await client.execute(uri: "/metrics", method: .get) { String(decoding: $0.body.readableBytesView, as: UTF8.self) }
                #expect(metrics.contains(#"parley_notifications_sent_total{kind="push"} 1"#))
            }
        }
    }

    /// A receiver that refuses (404) kills the delivery at once; the user lists it, points the
    /// webhook somewhere that works and retries it.
    @Test func aRefusedWebhookIsADeadLetterThatCanBeRetried() async throws {
        let sinks = try await NotificationSinks.start()
        defer { sinks.stop() }
        try await withTimeout(.seconds(60)) {
            try await NodeHarness.withNode(configure: Self.configure(sinks, window: .milliseconds(100))) { client, _ in
                let (alice, bob, _, channel) = try await Self.room(client)
                _ = try await client.json(.put, "/api/notifications/settings", token: bob.token,
                                          body: ["webhook_url": .string("http://127.0.0.1:\(client.port!)/no-such-hook")])
                _ = try await client.json(.post, "/api/channels/\(channel)/messages", token: alice.token, body: ["body": "@bob hi"])
                var dead: [JSONValue] = []
                #expect(await TestServices.eventually {
                    dead = (try? await client.json(.get, "/api/notifications/dead", token: bob.token).1["jobs"]?.arrayValue) ?? []
                    return dead.count == 1
                })
                #expect(dead.first?["kind"] == "webhook" && dead.first?["last_error"]?.stringValue?.contains("404") == true, "\(dead)")
                let job = dead.first?["id"]?.intValue ?? 0
                #expect(try await client.json(.post, "/api/notifications/dead/\(job)/retry", token: alice.token).0 == .notFound,
                        "another user's job is not theirs to retry")
                _ = try await client.json(.put, "/api/notifications/settings", token: bob.token,
                                          body: ["webhook_url": .string(sinks.webhookURL), "webhook_secret": .string(sinks.secret)])
                #expect(try await client.json(.post, "/api/notifications/dead/\(job)/retry", token: bob.token).0 == .ok)
                #expect(await TestServices.eventually { sinks.deliveries().count == 1 })
                #expect(try await client.json(.post, "/api/notifications/dead/\(job)/retry", token: bob.token).0 == .conflict,
                        "only a dead job")
                #expect(try await client.json(.get, "/api/notifications/dead", token: bob.token).1["jobs"]?.arrayValue?.isEmpty == true)
            }
        }
    }
}
