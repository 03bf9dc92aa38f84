import Foundation
import Logging
import ParleyCore
import Synchronization

/// The node's upload service (DESIGN §1): jobs of the `uploads` queue, shared by every node,
/// at most `concurrency` at once here, highest priority first. A job scans the file with the
/// virus scanner; infected content is quarantined (never served) and the upload ends
/// `infected`; clean images and videos get a thumbnail; the upload ends `ready`. Each step is
/// pushed as `upload_status` on the uploader's `user:{id}`. A cancelled upload's run stops
/// (its thumbnailer child is killed); a node that dies mid-job leaves it to another node when
/// its claim runs out, which runs it again from the start (every step can be repeated).
public final class UploadProcessor: Sendable {
    public static let queue = "uploads"

    public struct Settings: Sendable {
        public var workers: JobWorker.Settings
        public var thumbnailSize: Int
        public var attempts: Int

        public init(workers: JobWorker.Settings = JobWorker.Settings(concurrency: 5), thumbnailSize: Int = 320, attempts: Int = 5) {
            self.workers = workers
            self.thumbnailSize = thumbnailSize
            self.attempts = attempts
        }
    }

    public struct Stats: Sendable, Hashable {
        public var accepted = 0
        public var scanned = 0
        public var infected = 0
        public var thumbnails = 0
        public var failed = 0
        public var cancelled = 0
    }

    public let worker: JobWorker
    public let blobs: BlobDirectory
    private let jobs: any JobQueue
    private let store: any UploadStore
    private let scanner: any ContentScanner
    private let thumbnailer: any Thumbnailer
    private let publisher: any EventPublisher
    private let settings: Settings
    private let counters = Mutex(Stats())
    private let logger: Logger

    public init(jobs: any JobQueue, store: any UploadStore, blobs: BlobDirectory, scanner: any ContentScanner, thumbnailer: any Thumbnailer,
                publisher: any EventPublisher, worker: String, settings: Settings = Settings(),
                logger: Logger = Logger(label: "parley.uploads")) {
        self.jobs = jobs
        self.store = store
        self.blobs = blobs
        self.scanner = scanner
        self.thumbnailer = thumbnailer
        self.publisher = publisher
        self.settings = settings
        self.logger = logger
        let box = Box<UploadProcessor>()
        self.worker = JobWorker(queue: jobs, name: Self.queue, worker: worker, settings: settings.workers, handlers: [
            "process": { job in await box.value?.process(job) ?? .retry("stopping") },
        ], logger: logger)
        box.value = self
    }

    public func stats() -> Stats { counters.withLock { $0 } }

    /// Records a received file (stored in the blob folder and checked against the policy) and
    /// queues its processing.
    public func accept(_ blob: IncomingBlob.Received, filename: String, contentType: String, workspace: String, user: String,
                       priority: Int) async throws -> UploadRecord {
        let upload = UploadRecord(id: UUID().uuidString.lowercased(), workspaceID: workspace, userID: user, filename: filename,
                                  contentType: contentType, size: blob.size, sha256: blob.sha256, priority: priority)
        try await store.create(upload, job: NewJob(queue: Self.queue, kind: "process", payload: ["upload": .string(upload.id)],
                                                   priority: priority, maximumAttempts: settings.attempts))
        counters.withLock { $0.accepted += 1 }
        worker.poke()
        return upload
    }

    /// Cancels a queued or running upload; its job's run stops wherever it runs (the caller
    /// tells the other nodes, whose `stopRun` is called). Returns the job id when it was cancelled.
    public func cancel(_ upload: String) async throws -> Int64? {
        guard let job = try await store.cancel(upload) else { return nil }
        if job > 0 { _ = try await jobs.cancel(id: job) }
        counters.withLock { $0.cancelled += 1 }
        stopRun(job: job)
        if let record = try await store.upload(id: upload) { announce(record) }
        return job
    }

    /// Stops the run of `job` if it runs on this node.
    public func stopRun(job: Int64) { worker.cancelRun(of: job) }

    // MARK: The job

    func process(_ job: Job) async -> JobOutcome {
        guard let id = job.payload["upload"]?.stringValue else { return .dead("no upload id") }
        do {
            guard let upload = try await store.upload(id: id), !upload.status.isFinal else { return .succeeded }
            guard try await step(upload, .scanning) else { return .succeeded }
            let threat = try await scanner.scan(file: blobs.path(sha256: upload.sha256))
            counters.withLock { $0.scanned += 1 }
            try Task.checkCancellation()
            if let threat {
                try await blobs.quarantine(sha256: upload.sha256)
                _ = try await step(upload, .infected, threat: threat)
                counters.withLock { $0.infected += 1 }
                logger.notice("an upload was infected; its content is quarantined",
                              metadata: ["upload": "\(id)", "threat": "\(threat)", "sha256": "\(upload.sha256)"])
                return .succeeded
            }
            var thumbnail = false
            var problem: String?
            if UploadPolicy.isMedia(upload.contentType) {
                guard try await step(upload, .thumbnailing) else { return .succeeded }
                do {
                    try await thumbnailer.thumbnail(of: blobs.path(sha256: upload.sha256), contentType: upload.contentType,
                                                    to: blobs.thumbnailPath(upload: id), size: settings.thumbnailSize)
                    thumbnail = true
                    counters.withLock { $0.thumbnails += 1 }
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    // The file is clean and served; it only has no thumbnail.
                    problem = "no thumbnail: \(error)"
                }
            }
            try Task.checkCancellation()
            _ = try await step(upload, .ready, error: problem, thumbnail: thumbnail)
            return .succeeded
        } catch is CancellationError {
            return .retry("cancelled")
        } catch {
            if job.attempt >= job.maximumAttempts, let upload = try? await store.upload(id: id) {
                // The last attempt: the upload fails with the reason (its job goes dead).
                counters.withLock { $0.failed += 1 }
                _ = try? await step(upload, .failed, error: "\(error)")
            }
            return .retry("\(error)")
        }
    }

    /// Moves the upload on and tells its uploader; false when it was cancelled meanwhile.
    private func step(_ upload: UploadRecord, _ status: UploadStatus, error: String? = nil, threat: String? = nil,
                      thumbnail: Bool = false) async throws -> Bool {
        guard try await store.setStatus(upload.id, status, error: error, threat: threat, thumbnail: thumbnail) else { return false }
        var record = upload
        record.status = status
        record.error = error
        record.threat = threat
        record.hasThumbnail = thumbnail
        announce(record)
        return true
    }

    private func announce(_ upload: UploadRecord) {
        publisher.publish(.uploadStatus(upload.json), topic: "user:\(upload.userID)")
    }
}
