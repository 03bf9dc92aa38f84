import Crypto
import Dispatch
import Foundation

/// Uploaded files in a folder every node mounts (a compose volume; `var/blobs` locally), by
/// content: `blobs/ab/abcdef…` named by SHA-256, so the same bytes are stored once; thumbnails
/// by upload id; infected content moved to `quarantine/`, from which nothing is served. File
/// work runs on a dispatch queue, never on the cooperative pool.
public final class BlobDirectory: Sendable {
    public let root: String
    private let queue = DispatchQueue(label: "parley.blobs", attributes: .concurrent)

    public init(root: String) throws {
        self.root = root
        for folder in ["blobs", "thumbnails", "quarantine", "incoming"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(folder)", withIntermediateDirectories: true)
        }
    }

    public func path(sha256: String) -> String { "\(root)/blobs/\(sha256.prefix(2))/\(sha256)" }
    public func thumbnailPath(upload: String) -> String { "\(root)/thumbnails/\(upload).jpg" }
    func quarantinePath(sha256: String) -> String { "\(root)/quarantine/\(sha256)" }

    /// Stores `bytes` under their SHA-256 (written to a temporary name, then renamed into
    /// place: a reader never sees half a file); returns the hash.
    public func store(_ bytes: [UInt8]) async throws -> String {
        try await run {
            let hash = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            let target = self.path(sha256: hash)
            if !FileManager.default.fileExists(atPath: target) {
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true)
                let temporary = "\(self.root)/incoming/\(UUID().uuidString)"
                try Data(bytes).write(to: URL(fileURLWithPath: temporary))
                if rename(temporary, target) != 0 { try? FileManager.default.removeItem(atPath: temporary) }
            }
            return hash
        }
    }

    /// Moves the content out of what is served.
    public func quarantine(sha256: String) async throws {
        try await run {
            let source = self.path(sha256: sha256)
            guard FileManager.default.fileExists(atPath: source) else { return }
            if rename(source, self.quarantinePath(sha256: sha256)) != 0 {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: source])
            }
        }
    }

    /// The file's bytes; nil when it is not there.
    public func read(_ path: String) async throws -> [UInt8]? {
        try await run { FileManager.default.contents(atPath: path).map { [UInt8]($0) } }
    }

    private func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
