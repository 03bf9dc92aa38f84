import Foundation
import HTTPTypes
import Hummingbird
import MultipartKit
import NIOCore
import ParleyCore
import ParleyRuntime

/// `/api/uploads…`: multipart upload, status, the file and its thumbnail (to its uploader and
/// to members of a channel it was posted in; never while unscanned, never when infected),
/// cancel; and a channel's attachments.
extension APIRoutes {
    func registerUploads(on api: RouterGroup<ParleyRequestContext>) {
        api.post("uploads") { request, context in try await handle { try await upload(request, context) } }
        api.get("uploads/:upload") { request, context in try await handle { try await uploadStatus(request, context) } }
        api.post("uploads/:upload/cancel") { request, context in try await handle { try await cancelUpload(request, context) } }
        api.get("uploads/:upload/content") { request, context in try await serve(request, context, thumbnail: false) }
        api.get("uploads/:upload/thumbnail") { request, context in try await serve(request, context, thumbnail: true) }
        api.get("channels/:channel/attachments") { request, context in try await handle { try await attachments(request, context) } }
    }

    /// `multipart/form-data` with `file` (its filename and `Content-Type`), `workspace_id`, and
    /// optionally `priority` (0–10, higher first). Answers 202 with the queued upload.
    private func upload(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let policy = node.uploadPolicy
        guard let boundary = Self.boundary(request.headers[.contentType] ?? "") else {
            throw ProtocolError.invalidField(field: "body", reason: "must be multipart/form-data with a boundary")
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: policy.maximumBytes + 64 * 1024)
        } catch {
            throw ProtocolError.tooLarge(field: "file", limit: policy.maximumBytes, size: policy.maximumBytes + 1)
        }
        let form = try FormParts(body, boundary: boundary)
        guard let file = form.parts.first(where: { $0.name == "file" && $0.filename != nil }) else {
            throw ProtocolError.invalidField(field: "file", reason: "a file part is required")
        }
        guard file.body.count <= policy.maximumBytes else {
            throw ProtocolError.tooLarge(field: "file", limit: policy.maximumBytes, size: file.body.count)
        }
        guard let workspace = form.value("workspace_id"), UUID(uuidString: workspace) != nil else {
            throw ProtocolError.invalidField(field: "workspace_id", reason: "a workspace id is required")
        }
        var priority = 0
        if let raw = form.value("priority") {
            guard let value = Int(raw), (0...10).contains(value) else {
                throw ProtocolError.invalidField(field: "priority", reason: "must be between 0 and 10")
            }
            priority = value
        }
        try await requireWorkspaceMember(workspace.lowercased(), user)
        let type = (file.contentType ?? "application/octet-stream").split(separator: ";")[0].trimmingCharacters(in: .whitespaces).lowercased()
        try policy.check(type: type, head: Array(file.body.prefix(16)))
        let record = try await node.uploads.accept(file.body, filename: Self.filename(file.filename ?? ""), contentType: type,
                                                   workspace: workspace.lowercased(), user: user, priority: priority)
        return JSONResponse(["upload": record.json], status: .accepted)
    }

    private func readableUpload(_ request: Request, _ context: ParleyRequestContext) async throws -> (String, UploadRecord) {
        let user = try await authenticate(request)
        let id = try self.id(context, "upload")
        // Not the uploader's and posted in none of the user's channels: as if it did not exist.
        guard try await node.uploadStore.canRead(id, user: user), let record = try await node.uploadStore.upload(id: id) else {
            throw DirectoryError.notFound("upload \(id)")
        }
        return (user, record)
    }

    private func uploadStatus(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        JSONResponse(["upload": try await readableUpload(request, context).1.json])
    }

    private func cancelUpload(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let (user, record) = try await readableUpload(request, context)
        guard record.userID == user else { throw DirectoryError.forbidden("only its uploader can cancel an upload") }
        guard let job = try await node.uploads.cancel(record.id) else {
            throw DirectoryError.conflict("upload \(record.id) is \(record.status.rawValue) already")
        }
        // The node running it (if another) stops its run now rather than at its next renewal.
        await node.bus.broadcastControl("upload_cancelled", ["job": .int(job)])
        return JSONResponse(["upload": (try await node.uploadStore.upload(id: record.id) ?? record).json])
    }

    private func serve(_ request: Request, _ context: ParleyRequestContext, thumbnail: Bool) async throws -> Response {
        do {
            let (_, record) = try await readableUpload(request, context)
            switch record.status {
            case .ready: break
            case .infected: throw DirectoryError.forbidden("this file is infected (\(record.threat ?? "a threat")); it is never served")
            case .cancelled, .failed: throw DirectoryError.notFound("upload \(record.id) (\(record.status.rawValue))")
            case .queued, .scanning, .thumbnailing:
                throw DirectoryError.conflict("upload \(record.id) is \(record.status.rawValue); it is served once scanned")
            }
            guard !thumbnail || record.hasThumbnail else { throw DirectoryError.notFound("thumbnail of upload \(record.id)") }
            let blobs = node.uploads.blobs
            let path = thumbnail ? blobs.thumbnailPath(upload: record.id) : blobs.path(sha256: record.sha256)
            guard let bytes = try await blobs.read(path) else { throw ChannelError.unavailable("the file of upload \(record.id) is missing") }
            var headers: HTTPFields = [.contentType: thumbnail ? "image/jpeg" : record.contentType]
            headers[.contentDisposition] = thumbnail ? "inline" : Self.disposition(record.filename)
            headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
            headers[.cacheControl] = "private, max-age=3600"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch {
            return try await handle { throw error }.response(from: request, context: context)
        }
    }

    private func attachments(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let channel = try id(context, "channel")
        guard try await node.directory.isChannelMember(channel, user: user) else { throw ChannelError.notAMember }
        let list = try await node.uploadStore.attachments(channel: channel, limit: 100)
        return JSONResponse(["attachments": .array(list.map { ["message_id": .string($0.message), "upload": $0.upload.json] })])
    }

    /// `Content-Disposition` of a download (RFC 6266): an ASCII `filename` for old clients and
    /// the UTF-8 name as `filename*`.
    static func disposition(_ filename: String) -> String {
        let ascii = String(filename.unicodeScalars.map { $0.isASCII && $0 != "\"" && $0 != "\\" ? Character($0) : "_" })
        // RFC 5987's attr-char: ASCII letters, digits and these; everything else percent-encoded.
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~")
        let encoded = filename.addingPercentEncoding(withAllowedCharacters: allowed) ?? ascii
        return "attachment; filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }

    /// The boundary of a `multipart/form-data` content type (1–70 characters).
    static func boundary(_ contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.first?.lowercased() == "multipart/form-data" else { return nil }
        for part in parts.dropFirst() where part.lowercased().hasPrefix("boundary=") {
            let value = part.dropFirst("boundary=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            return (1...70).contains(value.count) ? value : nil
        }
        return nil
    }

    /// A file name safe to store and to send back: its last path component, no control
    /// characters or quotes, at most 200 characters.
    static func filename(_ raw: String) -> String {
        let last = raw.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let clean = String(last.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) && $0 != "\"" }.prefix(200))
        return clean.isEmpty || clean == "." || clean == ".." ? "upload" : clean
    }
}

/// The parts of a `multipart/form-data` body (multipart-kit's parser): at most 16.
struct FormParts {
    struct Part {
        var headers: [(String, String)] = []
        var body: [UInt8] = []

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name }?.1 }
        var contentType: String? { header("content-type") }
        /// A parameter of `Content-Disposition` (`name`, `filename`).
        func disposition(_ parameter: String) -> String? {
            guard let value = header("content-disposition") else { return nil }
            for piece in value.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) })
            where piece.lowercased().hasPrefix(parameter + "=") {
                return String(piece.dropFirst(parameter.count + 1)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
            return nil
        }
        var name: String? { disposition("name") }
        var filename: String? { disposition("filename") }
    }

    private(set) var parts: [Part] = []

    init(_ body: ByteBuffer, boundary: String) throws {
        let parser = MultipartParser(boundary: boundary)
        var current = Part()
        var done: [Part] = []
        var tooMany = false
        parser.onHeader = { name, value in current.headers.append((name, value)) }
        parser.onBody = { chunk in current.body += chunk.readableBytesView }
        parser.onPartComplete = {
            if done.count < 16 { done.append(current) } else { tooMany = true }
            current = Part()
        }
        do {
            try parser.execute(body)
        } catch {
            throw ProtocolError.invalidField(field: "body", reason: "is not valid multipart/form-data")
        }
        guard !tooMany else { throw ProtocolError.invalidField(field: "body", reason: "has more than 16 parts") }
        guard !done.isEmpty else { throw ProtocolError.invalidField(field: "body", reason: "holds no complete part") }
        parts = done
    }

    /// A text field's value (at most 200 characters).
    func value(_ name: String) -> String? {
        guard let part = parts.first(where: { $0.name == name && $0.filename == nil }), part.body.count <= 200 else { return nil }
        return String(decoding: part.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension Node {
    /// The uploads a new message of `user` in `channel` may carry (`attachments`: up to ten ids
    /// of their own uploads in the channel's workspace, not infected, failed or cancelled).
    public func attachableUploads(_ value: JSONValue?, channel: String, user: String) async throws -> [UploadRecord] {
        guard let value, value != .null else { return [] }
        guard let ids = value.arrayValue, ids.count <= 10 else {
            throw ProtocolError.wrongType(field: "attachments", expected: "an array of at most 10 upload ids", found: value.typeName)
        }
        guard !ids.isEmpty else { return [] }
        guard let workspace = try await directory.channel(id: channel)?.workspaceID else { throw DirectoryError.notFound("channel \(channel)") }
        var uploads: [UploadRecord] = []
        for item in ids {
            guard let id = item.stringValue, let upload = try await uploadStore.upload(id: id.lowercased()),
                  upload.userID == user, upload.workspaceID == workspace else {
                throw ProtocolError.invalidField(field: "attachments", reason: "must hold ids of your own uploads in this workspace")
            }
            guard ![.infected, .failed, .cancelled].contains(upload.status) else {
                throw ProtocolError.invalidField(field: "attachments", reason: "upload \(upload.id) is \(upload.status.rawValue)")
            }
            if !uploads.contains(where: { $0.id == upload.id }) { uploads.append(upload) }
        }
        return uploads
    }

    /// Links `uploads` to `message` at once (the message's row links them too when it is
    /// stored, in the same statement): the channel's members can read them from now on.
    func attach(_ uploads: [UploadRecord], to message: MessageView) async throws {
        try await uploadStore.attach(uploads.map(\.id), message: message.id, channel: message.channelID)
    }
}
