import Crypto
import Dispatch
import Foundation
import Synchronization

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

    /// A file to receive as it arrives (written to `incoming/`, hashed on the way), so an upload
    /// is never held whole in memory; `IncomingBlob.commit` puts it under its SHA-256.
    public func receive() async throws -> IncomingBlob {
        let path = "\(root)/incoming/\(UUID().uuidString)"
        return try await run {
            guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
            }
            return IncomingBlob(directory: self, path: path, handle: handle)
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

    /// Whether a file is at `path`.
    public func exists(_ path: String) async -> Bool {
        (try? await run { FileManager.default.fileExists(atPath: path) }) ?? false
    }

    fileprivate func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}

/// A file being received into a `BlobDirectory`: its chunks are appended in order (one writer),
/// hashed and counted on the way, on the directory's queue. `commit` renames it into place
/// under its SHA-256 (a reader never sees half a file; the same content is kept once);
/// `discard` removes it.
public final class IncomingBlob: Sendable {
    /// What was received: the hash, the size and the first 16 bytes (the type check's magic).
    public struct Received: Sendable, Hashable {
        public let sha256: String
        public let size: Int64
        public let head: [UInt8]
    }

    private struct State {
        var handle: FileHandle?
        var hasher = SHA256()
        var size: Int64 = 0
        var head: [UInt8] = []
    }

    private let directory: BlobDirectory
    private let path: String
    private let state: Mutex<State>

    fileprivate init(directory: BlobDirectory, path: String, handle: FileHandle) {
        self.directory = directory
        self.path = path
        state = Mutex(State(handle: handle))
    }

    /// Bytes received so far.
    public var size: Int64 { state.withLock { $0.size } }
    /// The first 16 bytes received (what a type's magic is checked against).
    public var head: [UInt8] { state.withLock { $0.head } }

    public func write(_ bytes: [UInt8]) async throws {
        guard !bytes.isEmpty else { return }
        try await directory.run {
            try self.state.withLock { state in
                guard let handle = state.handle else { throw CocoaError(.fileWriteUnknown) }
                try handle.write(contentsOf: bytes)
                state.hasher.update(data: bytes)
                state.size += Int64(bytes.count)
                if state.head.count < 16 { state.head += bytes.prefix(16 - state.head.count) }
            }
        }
    }

    public func commit() async throws -> Received {
        try await directory.run {
            let received = try self.state.withLock { state -> Received in
                try state.handle?.close()
                state.handle = nil
                let hash = state.hasher.finalize().map { String(format: "%02x", $0) }.joined()
                return Received(sha256: hash, size: state.size, head: state.head)
            }
            let target = self.directory.path(sha256: received.sha256)
            if FileManager.default.fileExists(atPath: target) {
                try? FileManager.default.removeItem(atPath: self.path)
            } else {
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if rename(self.path, target) != 0 {
                    try? FileManager.default.removeItem(atPath: self.path)
                    throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: target])
                }
            }
            return received
        }
    }

    public func discard() async {
        _ = try? await directory.run {
            self.state.withLock { state in
                try? state.handle?.close()
                state.handle = nil
            }
            try? FileManager.default.removeItem(atPath: self.path)
        }
    }
}
