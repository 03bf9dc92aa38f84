import Hummingbird
import ParleyRuntime

/// `/healthz` (the process answers) and `/readyz` (its backends answer: the load balancer's check).
struct HealthRoutes: Sendable {
    let nodeName: String
    let backends: Backends
    let readinessTimeout: Duration

    struct Health: ResponseEncodable {
        let status: String
        let node: String
        var checks: [String: String]? = nil
    }

    func register(on router: Router<some RequestContext>) {
        router.get("healthz") { _, _ in Health(status: "ok", node: nodeName) }
        router.get("readyz") { _, _ in
            let (redis, postgres) = await backends.check(timeout: readinessTimeout)
            let ready = redis == nil && postgres == nil
            let body = Health(status: ready ? "ready" : "unavailable", node: nodeName,
                              checks: ["redis": redis ?? "ok", "postgres": postgres ?? "ok"])
            return EditedResponse(status: ready ? .ok : .serviceUnavailable, response: body)
        }
    }
}
