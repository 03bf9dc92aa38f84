import Foundation
import ParleyAuth
import ParleyGateway
import Testing

@Suite("Auth: tokens and password hashes")
struct AuthTests {
    @Test func issuedTokenNamesItsUser() async throws {
        let issuer = await TokenIssuer(secret: "a-secret-long-enough-for-hs256-signing")
        let token = try await issuer.issue(userID: "user-1")
        #expect(try await issuer.verify(token) == "user-1")
    }

    @Test func expiredForeignAndGarbageTokensAreRefusedWithTheirReason() async throws {
        let issuer = await TokenIssuer(secret: "a-secret-long-enough-for-hs256-signing", lifetime: .seconds(60))
        let old = try await issuer.issue(userID: "user-1", now: Date().addingTimeInterval(-3600))
        await #expect(throws: TokenIssuer.Failure.expired) { try await issuer.verify(old) }
        let stranger = await TokenIssuer(secret: "another-secret-long-enough-for-hs256-too")
        let foreign = try await stranger.issue(userID: "user-1")
        do {
            _ = try await issuer.verify(foreign)
            Issue.record("a token signed with another secret must be refused")
        } catch {
            guard case .invalid = error else { Issue.record("got \(error)"); return }
        }
        do {
            _ = try await issuer.verify("not.a.token")
            Issue.record("garbage must be refused")
        } catch {
            guard case .invalid = error else { Issue.record("got \(error)"); return }
        }
    }

    @Test func passwordHashesVerifyOnlyTheirPassword() async throws {
        let hasher = PasswordHasher(cost: 4)
        let hash = try await hasher.hash("correct horse battery staple")
        #expect(hash.hasPrefix("$2b$04$"))
        #expect(hash != (try await hasher.hash("correct horse battery staple")), "salted")
        #expect(try await hasher.verify("correct horse battery staple", hash: hash))
        #expect(try await !hasher.verify("Correct horse battery staple", hash: hash))
        await hasher.shutdown()
    }
}
