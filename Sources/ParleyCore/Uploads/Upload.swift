/// Where an upload is in its processing (DESIGN §1 `UploadProcessor`).
public enum UploadStatus: String, Sendable, Hashable, CaseIterable {
    case queued, scanning, thumbnailing, ready, infected, failed, cancelled

    /// No job will change it any more.
    public var isFinal: Bool { [.ready, .infected, .failed, .cancelled].contains(self) }
}

public struct UploadRecord: Sendable, Hashable {
    public var id: String
    public var workspaceID: String
    public var userID: String
    public var filename: String
    public var contentType: String
    public var size: Int64
    /// Hex SHA-256 of the content: the blob's name.
    public var sha256: String
    public var status: UploadStatus
    public var priority: Int
    public var hasThumbnail: Bool
    public var error: String?
    /// The virus scanner's name for what it found.
    public var threat: String?

    public init(id: String, workspaceID: String, userID: String, filename: String, contentType: String, size: Int64, sha256: String,
                status: UploadStatus = .queued, priority: Int = 0, hasThumbnail: Bool = false, error: String? = nil, threat: String? = nil) {
        self.id = id
        self.workspaceID = workspaceID
        self.userID = userID
        self.filename = filename
        self.contentType = contentType
        self.size = size
        self.sha256 = sha256
        self.status = status
        self.priority = priority
        self.hasThumbnail = hasThumbnail
        self.error = error
        self.threat = threat
    }

    public var json: JSONValue {
        ["id": .string(id), "workspace_id": .string(workspaceID), "user_id": .string(userID), "filename": .string(filename),
         "content_type": .string(contentType), "size": .int(size), "sha256": .string(sha256), "status": .string(status.rawValue),
         "priority": .int(Int64(priority)), "thumbnail": .bool(hasThumbnail), "error": error.map { .string($0) } ?? .null,
         "threat": threat.map { .string($0) } ?? .null]
    }
}

/// What the uploads' data lives in (PostgreSQL in a cluster).
public protocol UploadStore: Sendable {
    /// Stores `upload` (queued) and its processing job, atomically.
    func create(_ upload: UploadRecord, job: NewJob) async throws
    func upload(id: String) async throws -> UploadRecord?
    /// Moves a non-final upload to `status`; false when it is final already (cancelled).
    func setStatus(_ id: String, _ status: UploadStatus, error: String?, threat: String?, thumbnail: Bool) async throws -> Bool
    /// Cancels the upload if it is not final; returns the id of its job when it did.
    func cancel(_ id: String) async throws -> Int64?
    /// Records that `uploads` were attached to message `messageID` in `channel`.
    func attach(_ uploads: [String], message messageID: String, channel: String) async throws
    /// Whether `user` may read the upload: its uploader, or a member of a channel it was posted in.
    func canRead(_ id: String, user: String) async throws -> Bool
    /// The uploads attached to messages of `channel`, newest first, with their message ids.
    func attachments(channel: String, limit: Int) async throws -> [(message: String, upload: UploadRecord)]
    /// Whether another upload with this content is clean (ready) or infected: a blob is
    /// quarantined only when none of its uploads may be served.
    func statuses(sha256: String) async throws -> [UploadStatus]
}

/// A virus scanner (ClamAV's clamd over INSTREAM in the executable).
public protocol ContentScanner: Sendable {
    /// nil when clean, else the name of what was found. Throws when the scan could not be made.
    func scan(file path: String) async throws -> String?
}

/// Makes a JPEG thumbnail (libvips for images, ffmpeg's poster frame for videos).
public protocol Thumbnailer: Sendable {
    /// Writes a thumbnail of `path` (of `contentType`) to `output`, at most `size` pixels wide
    /// and high. Throws when it cannot (a corrupt file).
    func thumbnail(of path: String, contentType: String, to output: String, size: Int) async throws
}

/// What may be uploaded: a size limit and an allow-list of types, each checked against the
/// content's first bytes where the type has a signature (a PNG must start as one).
public struct UploadPolicy: Sendable, Hashable {
    public var maximumBytes: Int
    public var allowedTypes: Set<String>

    public static let defaultTypes: Set<String> = ["image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4", "video/webm",
                                                   "video/quicktime", "application/pdf", "text/plain", "application/octet-stream"]

    public init(maximumBytes: Int = 25 * 1024 * 1024, allowedTypes: Set<String> = UploadPolicy.defaultTypes) {
        self.maximumBytes = maximumBytes
        self.allowedTypes = allowedTypes
    }

    /// Whether `type` gets a thumbnail.
    public static func isMedia(_ type: String) -> Bool { type.hasPrefix("image/") || type.hasPrefix("video/") }

    /// Checks a declared type against the allow-list (before any content is read).
    public func checkAllowed(type: String) throws(ProtocolError) {
        guard allowedTypes.contains(type) else {
            throw .invalidField(field: "file", reason: "type \(type.prefix(64)) is not accepted (allowed: \(allowedTypes.sorted().joined(separator: ", ")))")
        }
    }

    /// Checks a declared type against the allow-list and the content's first bytes.
    public func check(type: String, head: [UInt8]) throws(ProtocolError) {
        try checkAllowed(type: type)
        func starts(_ bytes: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + bytes.count && Array(head[offset..<offset + bytes.count]) == bytes
        }
        let matches: Bool
        switch type {
        case "image/png": matches = starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        case "image/jpeg": matches = starts([0xFF, 0xD8, 0xFF])
        case "image/gif": matches = starts(Array("GIF8".utf8))
        case "image/webp": matches = starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8)
        case "video/mp4", "video/quicktime": matches = starts(Array("ftyp".utf8), at: 4)
        case "video/webm": matches = starts([0x1A, 0x45, 0xDF, 0xA3])
        case "application/pdf": matches = starts(Array("%PDF-".utf8))
        default: matches = true
        }
        guard matches else { throw .invalidField(field: "file", reason: "the content is not \(type)") }
    }
}
