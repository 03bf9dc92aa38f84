import CFuzzDriver
#if canImport(Glibc)
import Glibc
#endif

/// Runs libFuzzer with `target` as the function under test and exits with its status.
///
/// SwiftPM gives an executable its own `main` (it links `main` to the module's entry point),
/// so libFuzzer's `main` is not used; its driver is called from ours instead, with the
/// process's arguments (corpus folders, `-max_total_time=…`, …).
public func runFuzzer(_ target: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv, target)
    exit(status)
}

/// The input as bytes (libFuzzer may pass a null pointer for an empty input).
public func bytes(_ data: UnsafePointer<UInt8>?, _ count: Int) -> [UInt8] {
    guard let data, count > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: count))
}
