// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "silly",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Silly", targets: ["Silly"]),
        .executable(name: "silly-step2-echo", targets: ["SillyStep2Echo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "Silly",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The tutorial's Step 2 echo loop, the server that BENCHMARKS.md measures.
        .executableTarget(
            name: "SillyStep2Echo",
            dependencies: ["Silly"],
            path: "Benchmarks/EchoStep2"
        ),
        .testTarget(
            name: "SillyTests",
            dependencies: [
                "Silly",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
