import Foundation
import JWTKit
import ParleyCore

/// Signs and checks the bearer tokens clients get at sign-in: HS256 JWTs naming the user,
/// with an expiry.
public struct TokenIssuer: Sendable {
    /// Why a token was refused (the wire reason is always `unauthorized`).
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case expired
        case invalid(String)

        public var description: String {
            switch self {
            case .expired: return "the token has expired"
            case .invalid(let why): return "the token is not valid: \(why)"
            }
        }
    }

    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var exp: ExpirationClaim
        var iat: IssuedAtClaim
        var iss: IssuerClaim

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
            guard iss.value == TokenIssuer.issuer else {
                throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "not issued by parley")
            }
        }
    }

    static let issuer = "parley"
    private let keys: JWTKeyCollection
    public let lifetime: Duration

    /// `secret` signs every token: all nodes of a cluster need the same one.
    public init(secret: String, lifetime: Duration = .seconds(7 * 24 * 3600)) async {
        precondition(secret.utf8.count >= 32, "the token secret must be at least 32 bytes (HS256 needs a key as long as its digest)")
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.lifetime = lifetime
    }

    /// A token for `userID`, valid for `lifetime` from `now`.
    public func issue(userID: String, now: Date = Date()) async throws -> String {
        try await keys.sign(Claims(sub: SubjectClaim(value: userID), exp: ExpirationClaim(value: now.addingTimeInterval(lifetime.seconds)),
                                   iat: IssuedAtClaim(value: now), iss: IssuerClaim(value: Self.issuer)))
    }

    /// The user a valid token names.
    public func verify(_ token: String) async throws(Failure) -> String {
        do {
            return try await keys.verify(token, as: Claims.self).sub.value
        } catch let error as JWTError where error.errorType == .claimVerificationFailure && error.failedClaim is ExpirationClaim {
            throw .expired
        } catch {
            throw .invalid("\(error)")
        }
    }
}
