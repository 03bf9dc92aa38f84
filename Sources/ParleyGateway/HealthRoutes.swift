import Hummingbird
import ParleyRuntime

/// `/healthz` (the process answers) and `/readyz` (the load balancer's check): ready only while
/// Redis and PostgreSQL answer, this node's heartbeat holds (it is in the ring), it can renew
/// its leases, and a probe through the cluster bus came back; never again once it drains.
struct HealthRoutes: Sendable {
    let node: Node

    struct Health: ResponseEncodable {
        let status: String
        let node: String
        var checks: [String: String]? = nil
    }

    func register(on router: Router<some RequestContext>) {
        let name = node.configuration.nodeName
        router.get("healthz") { _, _ in Health(status: "ok", node: name) }
        router.get("readyz") { _, _ in
            var checks = await node.backends.check(node.configuration.readinessTimeout).mapValues { $0 ?? "ok" }
            checks["cluster"] = node.membership.isMember ? "ok" : "this node's heartbeat is not confirmed"
            checks["leases"] = node.channels.ownership.renewalsHealthy ? "ok" : "lease renewals are failing"
            checks["bus"] = node.bus.probePassed ? "ok" : "the bus probe has not come back yet"
            if node.draining.isDraining { checks["draining"] = "this node is draining: it hands off its channels and closes its sockets" }
            let ready = checks.values.allSatisfy { $0 == "ok" }
            let body = Health(status: ready ? "ready" : "unavailable", node: name, checks: checks)
            return EditedResponse(status: ready ? .ok : .serviceUnavailable, response: body)
        }
    }
}
