import CJemalloc

/// The node's allocator is jemalloc (linked, so it replaces glibc's malloc for the whole
/// process). glibc's arenas kept what message traffic and closed sockets had used — a node of
/// the cluster benchmark held 0.7–1 GB with 17 MB in use — and jemalloc returns freed pages
/// after a decay time; its background threads do that even when the node is idle. The
/// cluster's chat benchmark also ran 38 % faster with it (glibc's malloc and free were a
/// tenth of the node's CPU).
enum Allocator {
    /// Starts jemalloc's background purging threads; false if jemalloc is not the allocator.
    @discardableResult
    static func configure() -> Bool {
        var enabled = true
        return mallctl("background_thread", nil, nil, &enabled, MemoryLayout<Bool>.size) == 0
    }
}
