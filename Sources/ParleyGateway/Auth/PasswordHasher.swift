import HummingbirdBcrypt
import NIOPosix

/// Bcrypt password hashes, computed off Swift's cooperative pool on threads of their own (a
/// hash at cost 12 takes a few hundred milliseconds of CPU by design), so that sign-ins
/// cannot starve the pools that do I/O.
public final class PasswordHasher: Sendable {
    public let cost: UInt8
    private let threadPool: NIOThreadPool

    public init(cost: UInt8 = 12, threads: Int = 2) {
        precondition((4...31).contains(cost), "bcrypt cost must be 4...31")
        self.cost = cost
        threadPool = NIOThreadPool(numberOfThreads: threads)
        threadPool.start()
    }

    public func shutdown() async {
        try? await threadPool.shutdownGracefully()
    }

    public func hash(_ password: String) async throws -> String {
        let cost = cost
        return try await threadPool.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    public func verify(_ password: String, hash: String) async throws -> Bool {
        try await threadPool.runIfActive { Bcrypt.verify(password, hash: hash) }
    }
}
