// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "silly",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Silly", targets: ["Silly"]),
        .library(name: "SillyEcho", targets: ["SillyEcho"]),
        .executable(name: "silly-echo", targets: ["silly-echo"]),
        .executable(name: "silly-bench", targets: ["silly-bench"]),
        .executable(name: "silly-step2-echo", targets: ["SillyStep2Echo"]),
        .executable(name: "silly-examples", targets: ["SillyExamples"]),
        .executable(name: "silly", targets: ["SillyScript"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "Silly",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The echo server as a library: modes, limits, statistics, shutdown.
        .target(
            name: "SillyEcho",
            dependencies: [
                "Silly",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // A Prometheus `/metrics` endpoint on SwiftNIO's HTTP/1, for any server built on Silly.
        .target(
            name: "SillyMetrics",
            dependencies: [
                "Silly",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What the command-line tools share: duration options.
        .target(
            name: "SillyCommandLine",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "silly-echo",
            dependencies: [
                "Silly",
                "SillyEcho",
                "SillyMetrics",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                "SillyCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // The load generator as a library, and its command line.
        .target(
            name: "SillyBench",
            dependencies: [
                "Silly",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "silly-bench",
            dependencies: [
                "Silly",
                "SillyBench",
                "SillyCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The tutorial's programs, one file per step and exercise: `silly-examples <name>`.
        .executableTarget(
            name: "SillyExamples",
            dependencies: ["Silly"],
            path: "Examples/Tutorial"
        ),
        // The tutorial's Step 2 echo loop, the server that BENCHMARKS.md measures.
        .executableTarget(
            name: "SillyStep2Echo",
            dependencies: ["Silly"],
            path: "Benchmarks/EchoStep2"
        ),
        // Lua 5.4 from Debian (liblua5.4-dev), for the `silly` script runtime only: the Silly
        // library and everything else build without it.
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        // The C side of the binding: the API's macros, and the trampoline through which Swift
        // functions raise errors and yield without a longjmp over Swift frames.
        .target(name: "CLuaShim", dependencies: ["CLua"]),
        // The runtime: one Lua state on one event loop, a coroutine per connection and task.
        .target(
            name: "SillyLua",
            dependencies: [
                "Silly",
                "CLua",
                "CLuaShim",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "SillyScript",
            dependencies: [
                "Silly",
                "SillyLua",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/silly"
        ),
        .target(
            name: "SillyTestSupport",
            dependencies: ["Silly"],
            path: "Tests/SillyTestSupport"
        ),
        .testTarget(
            name: "SillyTests",
            dependencies: [
                "Silly",
                "SillyTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SillyEchoTests",
            dependencies: [
                "Silly",
                "SillyTestSupport",
                "SillyEcho",
                "SillyMetrics",
                "silly-echo",
                "silly-bench",
                "SillyBench",
                "SillyExamples",
                "SillyScript",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
