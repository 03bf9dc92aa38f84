import Hummingbird
import Logging
import ParleyPostgres
import ParleyRuntime

/// Builds the node's HTTP application; `parley serve` runs it and the tests call it too.
public func buildApplication(configuration: NodeConfiguration, backends: Backends,
                             logger: Logger) -> some ApplicationProtocol {
    let router = Router()
    HealthRoutes(nodeName: configuration.nodeName, backends: backends,
                 readinessTimeout: configuration.readinessTimeout).register(on: router)
    return Application(router: router,
                       configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort),
                                            serverName: "parley"),
                       logger: logger)
}
