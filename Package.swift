// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "parley",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "parley", targets: ["parley"]),
        .executable(name: "parley-bench", targets: ["parley-bench"]),
        // For the fuzz targets (Fuzz/, a package of its own built with the fuzzer sanitizer).
        .library(name: "ParleyCore", targets: ["ParleyCore"]),
        .library(name: "ParleyAuth", targets: ["ParleyAuth"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CJemalloc",
            pkgConfig: "jemalloc",
            providers: [.apt(["libjemalloc-dev"])]
        ),
        .systemLibrary(
            name: "CLibpq",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "ParleyCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "ParleyRedis",
            dependencies: [
                "CHiredis", "ParleyCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "ParleyPostgres",
            dependencies: [
                "CLibpq", "ParleyCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "ParleyRuntime",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                "ParleyCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Bearer tokens: signed and verified here (the gateway uses it; a fuzz target too).
        .target(
            name: "ParleyAuth",
            dependencies: [
                "ParleyCore",
                .product(name: "JWTKit", package: "jwt-kit"),
            ]
        ),
        .target(
            name: "ParleyGateway",
            dependencies: [
                "ParleyCore", "ParleyRuntime", "ParleyAuth",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "MultipartKit", package: "multipart-kit"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A blocking TCP socket for the adapters that talk to local daemons on threads of their own.
        .target(name: "ParleySockets"),
        // Adapters that deliver notifications: webhooks (async-http-client), mail (SMTP).
        .target(
            name: "ParleyDelivery",
            dependencies: [
                "ParleyCore", "ParleySockets",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Adapters that process uploads: ClamAV's clamd (INSTREAM), libvips and ffmpeg.
        .target(
            name: "ParleyMedia",
            dependencies: [
                "ParleyCore", "ParleySockets",
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The composition root: the one place that wires the Redis and PostgreSQL adapters into
        // the runtime and the gateway (the executable runs it; node tests start nodes with it).
        .target(
            name: "ParleyWiring",
            dependencies: [
                "ParleyCore", "ParleyAuth", "ParleyRedis", "ParleyPostgres", "ParleyRuntime", "ParleyGateway", "ParleyDelivery",
                "ParleyMedia",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "parley",
            dependencies: [
                "CJemalloc", "ParleyCore", "ParleyRedis", "ParleyPostgres", "ParleyRuntime", "ParleyGateway", "ParleyWiring", "ParleyDelivery",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "parley-bench",
            dependencies: [
                "ParleyCore", "ParleyRedis", "ParleyPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ParleyTestSupport",
            dependencies: ["ParleyCore", "ParleyRedis", "ParleyPostgres"],
            path: "Tests/ParleyTestSupport"
        ),
        .testTarget(
            name: "ParleyCoreTests",
            dependencies: ["ParleyCore"]
        ),
        .testTarget(
            name: "ParleyRuntimeTests",
            dependencies: ["ParleyCore", "ParleyRuntime"]
        ),
        .testTarget(
            name: "ParleyBackendTests",
            dependencies: [
                "ParleyCore", "ParleyRedis", "ParleyPostgres", "ParleyRuntime", "ParleyTestSupport", "ParleyDelivery", "ParleyMedia",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "ParleyNodeTests",
            dependencies: [
                "ParleyCore", "ParleyAuth", "ParleyRuntime", "ParleyGateway", "ParleyWiring", "ParleyPostgres", "ParleyRedis", "ParleyTestSupport",
                "ParleyDelivery",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ]
)
