import Hummingbird
import ParleyCore
import ParleyRuntime

/// An API failure: a JSON body `{"error": {"code", "message"}}` with a stable code.
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONResponse(body, status: status).response
    }

    /// The response body: `{"error": {"code", "message"}}`.
    var body: JSONValue { ["error": ["code": .string(code), "message": .string(message)]] }

    static let unauthorized = APIError(.unauthorized, "unauthorized", "a valid bearer token is required")
    /// A backend failure: clients see this generic answer, the detail goes to the log.
    static let unavailable = APIError(.serviceUnavailable, "unavailable", "temporarily unavailable; retry shortly")

    /// The same error naming the request id under which its detail was logged.
    func withRequestID(_ id: String) -> APIError { APIError(status, code, "\(message) (request \(id))") }

    /// The API form of errors from below.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError: return error
        case let error as ProtocolError: return APIError(error.reason == "too_large" ? .contentTooLarge : .badRequest, error.reason, error.description)
        case let error as DirectoryError:
            let status: HTTPResponse.Status = switch error {
            case .conflict: .conflict
            case .notFound: .notFound
            case .forbidden: .forbidden
            }
            return APIError(status, error.code, error.description)
        case let error as ChannelError:
            let status: HTTPResponse.Status = switch error {
            case .notAMember: .forbidden
            case .notFound: .notFound
            case .forbidden: .forbidden
            case .notOwner, .unavailable, .gap: .serviceUnavailable
            }
            return status == .serviceUnavailable ? .unavailable : APIError(status, error.reason, error.description)
        default:
            return .unavailable
        }
    }
}

/// A JSON response from a `JSONValue`.
struct JSONResponse: ResponseGenerator {
    let value: JSONValue
    let status: HTTPResponse.Status

    init(_ value: JSONValue, status: HTTPResponse.Status = .ok) {
        self.value = value
        self.status = status
    }

    var response: Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                 body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.jsonBytes)))
    }

    func response(from request: Request, context: some RequestContext) throws -> Response { response }
}
