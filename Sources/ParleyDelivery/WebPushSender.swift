import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import ParleyCore

/// Web Push (RFC 8030) of notifications to browsers' push services: the payload encrypted for
/// the subscription with `aes128gcm` (RFC 8291: an ephemeral P-256 key agreed with the
/// subscription's key, HKDF with its auth secret, AES-128-GCM, one record), and the request
/// signed with the server's VAPID key (RFC 8292: an ES256 JWT for the push service's origin).
/// 2xx is delivered; 404 and 410 mean the subscription is gone; 429, 5xx, time-outs are retried.
/// Push services are reached only at addresses `policy` permits.
public final class WebPushSender: PushSender {
    private let http: DeliveryHTTP
    private let vapid: P256.Signing.PrivateKey
    private let subject: String

    /// `privateKey`: the VAPID key's 32-byte scalar, base64url; `subject`: a `mailto:` or
    /// `https:` contact for the push services.
    public init(privateKey: String, subject: String, timeout: Duration = .seconds(10),
                policy: OutboundAddressPolicy = OutboundAddressPolicy()) throws {
        guard let raw = Base64URL.decode(privateKey), raw.count == 32, let key = try? P256.Signing.PrivateKey(rawRepresentation: raw) else {
            throw DeliveryError.permanent("PARLEY_VAPID_PRIVATE_KEY must be a P-256 private key, 32 bytes in base64url (parley vapid-key makes one)")
        }
        vapid = key
        self.subject = subject
        http = DeliveryHTTP(timeout: timeout, policy: policy)
    }

    /// The VAPID public key (uncompressed point, base64url): a browser's `applicationServerKey`.
    public var publicKey: String { Base64URL.encode(Array(vapid.publicKey.x963Representation)) }

    public func shutdown() async { await http.shutdown() }

    public func send(_ push: PushMessage) async throws {
        guard let url = URL(string: push.endpoint), let scheme = url.scheme, ["http", "https"].contains(scheme), let host = url.host else {
            throw DeliveryError.gone("not a push endpoint: \(push.endpoint.prefix(80))")
        }
        let body = try Self.encrypt(push.payload, for: push.subscriberKey, authSecret: push.authSecret)
        var request = HTTPClientRequest(url: push.endpoint)
        request.method = .POST
        let origin = "\(scheme)://\(host)\(url.port.map { ":\($0)" } ?? "")"
        request.headers.add(name: "Authorization", value: "vapid t=\(try jwt(audience: origin)), k=\(publicKey)")
        request.headers.add(name: "Content-Encoding", value: "aes128gcm")
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.headers.add(name: "TTL", value: "\(push.timeToLive)")
        request.headers.add(name: "Urgency", value: push.urgent ? "high" : "normal")
        request.body = .bytes(ByteBuffer(bytes: body))
        switch try await http.post(request) {
        case 200..<300: return
        case let status where status == 404 || status == 410: throw DeliveryError.gone("the push service answered \(status)")
        case let status where status == 429 || status >= 500: throw DeliveryError.retryable("HTTP \(status)")
        case let status: throw DeliveryError.permanent("HTTP \(status)")
        }
    }

    /// The VAPID token: ES256 over `{"aud", "exp" (12 h), "sub"}`.
    func jwt(audience: String, now: Date = Date()) throws -> String {
        let header = Base64URL.encode(Array(#"{"typ":"JWT","alg":"ES256"}"#.utf8))
        let claims: JSONValue = ["aud": .string(audience), "exp": .int(Int64(now.timeIntervalSince1970) + 12 * 3600), "sub": .string(subject)]
        let input = header + "." + Base64URL.encode(claims.jsonBytes)
        let signature = try vapid.signature(for: Array(input.utf8))
        return input + "." + Base64URL.encode(Array(signature.rawRepresentation))
    }

    /// The `aes128gcm` body of RFC 8291 §4 for `payload`: salt, record size, the ephemeral
    /// public key, then the one encrypted record (payload, delimiter 2, tag).
    public static func encrypt(_ payload: [UInt8], for subscriberKey: [UInt8], authSecret: [UInt8],
                               ephemeral: P256.KeyAgreement.PrivateKey = P256.KeyAgreement.PrivateKey(),
                               salt: [UInt8] = (0..<16).map { _ in UInt8.random(in: 0...255) }) throws -> [UInt8] {
        guard let subscriber = try? P256.KeyAgreement.PublicKey(x963Representation: subscriberKey), authSecret.count == 16 else {
            throw DeliveryError.gone("the subscription's keys are not a P-256 key and a 16-byte secret")
        }
        let recordSize = 4096
        guard payload.count + 17 <= recordSize else { throw DeliveryError.permanent("push payload too large (\(payload.count) bytes)") }
        let shared = try ephemeral.sharedSecretFromKeyAgreement(with: subscriber).withUnsafeBytes { Array($0) }
        let serverKey = Array(ephemeral.publicKey.x963Representation)
        let keyInfo = Array("WebPush: info\0".utf8) + subscriberKey + serverKey
        let ikm = hmac(key: hmac(key: authSecret, shared), keyInfo + [1])
        let prk = hmac(key: salt, ikm)
        let contentKey = Array(hmac(key: prk, Array("Content-Encoding: aes128gcm\0".utf8) + [1]).prefix(16))
        let nonce = Array(hmac(key: prk, Array("Content-Encoding: nonce\0".utf8) + [1]).prefix(12))
        let sealed = try AES.GCM.seal(payload + [2], using: SymmetricKey(data: contentKey), nonce: AES.GCM.Nonce(data: nonce))
        let size = UInt32(recordSize).bigEndian
        return salt + withUnsafeBytes(of: size) { Array($0) } + [UInt8(serverKey.count)] + serverKey
            + Array(sealed.ciphertext) + Array(sealed.tag)
    }

    private static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
    }

    /// A new VAPID key: (private scalar, public point), both base64url.
    public static func newKey() -> (privateKey: String, publicKey: String) {
        let key = P256.Signing.PrivateKey()
        return (Base64URL.encode(Array(key.rawRepresentation)), Base64URL.encode(Array(key.publicKey.x963Representation)))
    }
}
