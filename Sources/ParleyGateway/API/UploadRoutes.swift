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
    /// optionally `priority` (0–10, higher first). Answers 202 with the queued upload. The file
    /// goes to the blob folder as it arrives (never whole in memory); a refused upload leaves
    /// nothing behind.
    private func upload(_ request: Request, _ context: ParleyRequestContext) async throws -> JSONResponse {
        let user = try await authenticate(request)
        let policy = node.uploadPolicy
        guard let boundary = Self.boundary(request.headers[.contentType] ?? "") else {
            throw ProtocolError.invalidField(field: "body", reason: "must be multipart/form-data with a boundary")
        }
        let incoming = try await node.uploads.blobs.receive()
        do {
            let form = try await StreamedForm.read(request.body, boundary: boundary, policy: policy, into: incoming)
            guard let filename = form.filename else { throw ProtocolError.invalidField(field: "file", reason: "a file part is required") }
            guard let workspace = form.fields["workspace_id"], UUID(uuidString: workspace) != nil else {
                throw ProtocolError.invalidField(field: "workspace_id", reason: "a workspace id is required")
            }
            var priority = 0
            if let raw = form.fields["priority"] {
                guard let value = Int(raw), (0...10).contains(value) else {
                    throw ProtocolError.invalidField(field: "priority", reason: "must be between 0 and 10")
                }
                priority = value
            }
            try await requireWorkspaceMember(workspace.lowercased(), user)
            try policy.check(type: form.type, head: incoming.head)
            let received = try await incoming.commit()
            let record = try await node.uploads.accept(received, filename: Self.filename(filename), contentType: form.type,
                                                       workspace: workspace.lowercased(), user: user, priority: priority)
            return JSONResponse(["upload": record.json], status: .accepted)
        } catch {
            await incoming.discard()
            throw error
        }
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
            guard await blobs.exists(path) else { throw ChannelError.unavailable("the file of upload \(record.id) is missing") }
            var headers: HTTPFields = [.contentType: thumbnail ? "image/jpeg" : record.contentType]
            headers[.contentDisposition] = thumbnail ? "inline" : Self.disposition(record.filename)
            headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
            headers[.cacheControl] = "private, max-age=3600"
            // Streamed from the file in chunks (Hummingbird's FileIO on NIO's thread pool).
            return Response(status: .ok, headers: headers, body: try await FileIO().loadFile(path: path, context: context))
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

/// A `multipart/form-data` body read as it arrives, with multipart-kit's streaming parser: the
/// `file` part is written to a blob chunk by chunk (an upload is never whole in memory) and
/// refused as soon as it passes the size limit or its declared type is not allowed; the other
/// parts are text fields of at most 1 KiB; at most 16 parts.
struct StreamedForm {
    var fields: [String: String] = [:]
    /// The file part's name, if there was one.
    var filename: String?
    /// Its declared type (lower case, without parameters).
    var type = "application/octet-stream"

    static let maximumParts = 16
    static let maximumFieldBytes = 1024

    static func read(_ body: RequestBody, boundary: String, policy: UploadPolicy, into blob: IncomingBlob) async throws -> StreamedForm {
        let parser = MultipartParser(boundary: boundary)
        var form = StreamedForm()
        var failure: ProtocolError?
        // The part being read.
        var headers: [(String, String)] = []
        var started = false, inFile = false, fileDone = false
        var fieldName: String?, fieldBody: [UInt8] = [], fieldTooLong = false
        var parts = 0, fileBytes = 0
        var pending: [UInt8] = []

        func start() {
            guard !started else { return }
            started = true
            let part = PartHeaders(headers)
            guard part.name == "file", let filename = part.filename else {
                fieldName = part.name
                return
            }
            guard form.filename == nil else {
                failure = failure ?? .invalidField(field: "file", reason: "one file per upload")
                return
            }
            form.filename = filename
            form.type = (part.contentType ?? form.type).split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? form.type
            do { try policy.checkAllowed(type: form.type) } catch { failure = failure ?? error }
            inFile = true
        }
        parser.onHeader = { name, value in headers.append((name, value)) }
        parser.onBody = { chunk in
            start()
            if inFile {
                fileBytes += chunk.readableBytes
                if fileBytes <= policy.maximumBytes { pending += chunk.readableBytesView }
            } else if fieldBody.count + chunk.readableBytes <= maximumFieldBytes {
                fieldBody += chunk.readableBytesView
            } else {
                fieldTooLong = true
            }
        }
        parser.onPartComplete = {
            start()
            parts += 1
            if inFile {
                fileDone = true
            } else if let name = fieldName, form.fields[name] == nil {
                if fieldTooLong {
                    failure = failure ?? .invalidField(field: name, reason: "is longer than \(maximumFieldBytes) bytes")
                } else {
                    form.fields[name] = String(decoding: fieldBody, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                }
            }
            headers = []
            started = false
            inFile = false
            fieldName = nil
            fieldBody = []
            fieldTooLong = false
        }

        var total = 0
        for try await buffer in body {
            total += buffer.readableBytes
            // The file, and room for the other parts and the boundaries.
            guard total <= policy.maximumBytes + 64 * 1024 else {
                throw ProtocolError.tooLarge(field: "file", limit: policy.maximumBytes, size: max(fileBytes, policy.maximumBytes + 1))
            }
            do {
                try parser.execute(buffer)
            } catch {
                throw ProtocolError.invalidField(field: "body", reason: "is not valid multipart/form-data")
            }
            if let failure { throw failure }
            guard fileBytes <= policy.maximumBytes else {
                throw ProtocolError.tooLarge(field: "file", limit: policy.maximumBytes, size: fileBytes)
            }
            guard parts <= maximumParts else { throw ProtocolError.invalidField(field: "body", reason: "has more than \(maximumParts) parts") }
            if !pending.isEmpty {
                try await blob.write(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        guard parts > 0 else { throw ProtocolError.invalidField(field: "body", reason: "holds no complete part") }
        guard form.filename == nil || fileDone else { throw ProtocolError.invalidField(field: "file", reason: "ends before its boundary") }
        return form
    }

    /// A part's headers: its name, file name and type.
    struct PartHeaders {
        let headers: [(String, String)]
        init(_ headers: [(String, String)]) { self.headers = headers }

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
