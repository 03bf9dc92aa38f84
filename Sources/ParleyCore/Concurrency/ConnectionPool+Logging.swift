import Logging

extension ConnectionPoolEvent {
    /// An event handler that logs losses as warnings and recoveries as info.
    public static func logger(_ logger: Logger, service: String, endpoint: String) -> @Sendable (ConnectionPoolEvent) -> Void {
        { event in
            switch event {
            case .lost(let reason, let retryIn):
                logger.warning("\(service) unavailable", metadata: [
                    "endpoint": "\(endpoint)", "reason": "\(reason)", "retry_in_ms": "\(retryIn.milliseconds)"])
            case .restored:
                logger.info("\(service) connection restored", metadata: ["endpoint": "\(endpoint)"])
            }
        }
    }
}
