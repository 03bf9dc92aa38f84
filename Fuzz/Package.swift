// swift-tools-version: 6.1
// The fuzz targets: libFuzzer entry points over everything Parley parses from untrusted bytes.
// A package of its own, so that the sanitizer flags never reach the main build; `cluster/fuzz`
// builds it with `-sanitize=fuzzer,address` and runs each target.
import Foundation
import PackageDescription

// The Parley package one folder up; a path dependency's identity is its folder's name.
let parley = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let identity = parley.lastPathComponent.lowercased()

func fuzzTarget(_ name: String, _ products: [String]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: identity) },
                      path: "Sources/\(name)")
}

let package = Package(
    name: "ParleyFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: parley.path)],
    targets: [
        .target(name: "CFuzzDriver", path: "Sources/CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"], path: "Sources/FuzzSupport"),
        fuzzTarget("FuzzJSON", ["ParleyCore"]),
        fuzzTarget("FuzzPhoenixText", ["ParleyCore"]),
        fuzzTarget("FuzzPhoenixBinary", ["ParleyCore"]),
        fuzzTarget("FuzzClientEvent", ["ParleyCore"]),
        fuzzTarget("FuzzAPIBody", ["ParleyCore"]),
        fuzzTarget("FuzzToken", ["ParleyAuth"]),
        fuzzTarget("FuzzAddress", ["ParleyCore"]),
    ]
)
