import Dispatch
import Foundation
import FuzzSupport
import ParleyAuth

/// The bearer-token verifier on arbitrary strings: it refuses (`TokenIssuer.Failure`) or
/// names a user; a user only a token signed with the secret names (the seed corpus holds such
/// tokens for "fuzz-user", valid until 2126): anything else verifying is a forged token.
let secret = "fuzz-secret-fuzz-secret-fuzz-secret-0123456789"
let issuer = blocking { await TokenIssuer(secret: secret) }

final class Slot<Value>: @unchecked Sendable { var value: Value? }

/// Runs async work to completion from libFuzzer's synchronous callback.
func blocking<Value: Sendable>(_ work: @escaping @Sendable () async -> Value) -> Value {
    let slot = Slot<Value>()
    let done = DispatchSemaphore(value: 0)
    Task {
        slot.value = await work()
        done.signal()
    }
    done.wait()
    return slot.value!
}

func fuzzToken(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let token = String(decoding: FuzzSupport.bytes(data, count), as: UTF8.self)
    let user = blocking { () async -> String? in
        do { return try await issuer.verify(token) } catch {
            if "\(error)".isEmpty { fatalError("a refusal without a reason") }
            return nil
        }
    }
    if let user, user != "fuzz-user" { fatalError("a token naming \(user) verified: forged (\(token))") }
    return 0
}

runFuzzer { data, count in fuzzToken(data, count) }
