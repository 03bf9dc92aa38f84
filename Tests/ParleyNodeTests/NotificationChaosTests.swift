import Foundation
import ParleyCore
import ParleyTestSupport
import Testing

/// Issue 19: notification and upload jobs in flight on a node that is killed (kill -9) complete
/// on the survivors, each once (`Tests/clients/notify_chaos.py` drives three `parley serve`
/// processes, a slow webhook receiver, an SMTP server, clamd and libvips).
@Suite("Notification and upload jobs survive a killed node", .serialized)
struct NotificationChaosTests {
    @Test func everyJobCompletesOnceOnTheSurvivors() async throws {
        try await TestServices.withSchema { postgres, schema in
            let environment = ClientDriver.environment(node: "notify", schema: schema)
            guard let report = try await ClientDriver.run("notify_chaos.py", ["--log", "/tmp/parley-notify-chaos.log"],
                                                          environment: environment) else { return }
            let notifications = report["notification_ids"]?.arrayValue?.count ?? -1
            var states: [String: Int] = [:]
            for row in try await postgres.query("SELECT kind || ':' || state, count(*)::bigint FROM jobs GROUP BY 1") {
                states[try row.decode(String.self, at: 0)] = Int(try row.decode(Int64.self, at: 1))
            }
            #expect(states.keys.allSatisfy { $0.hasSuffix(":completed") }, "the queue is drained, nothing dead: \(states)")
            #expect(states["webhook:completed"] == notifications && states["email:completed"] == notifications,
                    "one delivery job of each kind per notification: \(states), \(notifications) notifications")
            #expect(states["digest:completed"] == notifications, "one digest per notification")
            let uploads = report["upload_ids"]?.arrayValue?.count ?? -1
            #expect(uploads > 0 && states["process:completed"] == uploads, "one completed job per upload: \(states), \(uploads) uploads")
            let stored = try await postgres.query("SELECT count(*)::bigint FROM notifications WHERE kind = 'in_app'")[0].decode(Int64.self, at: 0)
            #expect(stored == Int64(notifications))
            var retaken: [String: Int64] = [:]
            for row in try await postgres.query("SELECT kind, count(*)::bigint FROM jobs WHERE attempt > 1 GROUP BY kind") {
                retaken[try row.decode(String.self, at: 0)] = try row.decode(Int64.self, at: 1)
            }
            let webhooks = report["measured"]?["webhooks"]
            #expect(webhooks?["distinct"]?.intValue == Int64(notifications))
            print("notification chaos: \(report["measured"]?.jsonText ?? "{}"); jobs \(states); runs retried after a failure or the kill: \(retaken)")
        }
    }
}
