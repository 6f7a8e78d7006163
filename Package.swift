// swift-tools-version:6.2
//
// Starling's target graph. Dependencies point one way, from pure logic to I/O shells:
//
//   StarlingCore ─┬─ StarlingChunk ─┬─ StarlingStorage ── StarlingRocksDB (only user of CRocksDB)
//                 │                 └─ StarlingPromQL
//                 ├─ StarlingIngest (decoders, validation; no I/O)
//                 ├─ StarlingMembership (SWIM state machine; no I/O)
//                 ├─ StarlingPlacement (shard placement, per-node shard ownership; no I/O)
//                 ├─ StarlingPeerWire (peer-RPC frames and messages; + Membership's keyring; no I/O)
//                 └─ StarlingAlerting (rules, templates, matchers, routing, grouping, silences, lifecycle;
//                                      + PromQL, Yams; no I/O)
//   shells: StarlingCompression (LZ4/Snappy/gzip) · StarlingGossip (NIO UDP/TCP) · StarlingHTTP (Hummingbird)
//           · StarlingPeer (peer-RPC framing handlers over StarlingPeerWire)
//   StarlingNode (composition root, services) ── `starling` executable
//
// Pure targets import no NIO, no Hummingbird, no C module and never read a clock or the system RNG.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "starling",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "starling", targets: ["starling"]),
        .executable(name: "starling-bench", targets: ["starling-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // MARK: C libraries from Debian (system-library targets)
        .systemLibrary(
            name: "CRocksDB", path: "Sources/CRocksDB", pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"])]),
        .systemLibrary(
            name: "CLZ4", path: "Sources/CLZ4", pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CSnappy", path: "Sources/CSnappy", pkgConfig: "snappy",
            providers: [.apt(["libsnappy-dev"])]),

        // MARK: C helpers of our own
        .target(name: "CPrefetch", path: "Sources/CPrefetch"),

        // MARK: Pure logic
        .target(name: "StarlingCore", swiftSettings: swiftSettings),
        .target(name: "StarlingChunk", dependencies: ["StarlingCore", "CPrefetch"], swiftSettings: swiftSettings),
        .target(
            name: "StarlingStorage", dependencies: ["StarlingCore", "StarlingChunk", "CPrefetch"],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(
            name: "StarlingIngest", dependencies: ["StarlingCore"], swiftSettings: swiftSettings),
        .target(
            name: "StarlingMembership",
            dependencies: ["StarlingCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingPromQL", dependencies: ["StarlingCore", "StarlingChunk"],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingPlacement", dependencies: ["StarlingCore"], swiftSettings: swiftSettings),
        .target(
            name: "StarlingPeerWire",
            dependencies: [
                "StarlingCore", "StarlingPlacement",
                // The cluster keyring (shared with gossip) and AES-GCM.
                "StarlingMembership", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingAlerting",
            // PromQL: rule expressions are parsed (validated) when rule files load.
            dependencies: ["StarlingCore", "StarlingPromQL", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings),

        // MARK: I/O shells
        .target(
            name: "StarlingCompression",
            dependencies: [
                "CLZ4", "CSnappy", "CZlib",
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingPeer",
            dependencies: [
                "StarlingPeerWire", "StarlingMembership", "StarlingCompression",
                .product(name: "NIOCore", package: "swift-nio"),
                // PeerServer / PeerPool: TCP bootstraps, logs, and the Service protocol.
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingCluster",
            dependencies: [
                "StarlingCore", "StarlingStorage", "StarlingPlacement", "StarlingPeerWire",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingRocksDB", dependencies: ["CRocksDB", "StarlingStorage"],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingGossip",
            dependencies: [
                "StarlingCore", "StarlingMembership",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingHTTP",
            dependencies: [
                "StarlingCore", "StarlingChunk", "StarlingStorage", "StarlingIngest", "StarlingPromQL",
                "StarlingProto", "StarlingCompression", "StarlingMembership",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                // Token hashing (SHA-256) and the thread pool that runs blocking storage calls.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        .target(
            name: "StarlingNode",
            dependencies: [
                "StarlingCore", "StarlingStorage", "StarlingRocksDB", "StarlingHTTP", "StarlingGossip",
                "StarlingMembership", "StarlingIngest", "StarlingPromQL", "StarlingCluster", "StarlingPlacement",
                "StarlingPeer", "StarlingPeerWire", "StarlingAlerting",
                // Webhook notifications.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "starling",
            dependencies: [
                "StarlingNode", "StarlingCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "starling-bench",
            dependencies: [
                "StarlingCore", "StarlingChunk", "StarlingProto", "StarlingCompression", "StarlingTestKit", "StarlingIngest",
                "StarlingStorage", "StarlingRocksDB",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),

        // MARK: Membership simulator (deterministic, test support) and its figures tool
        .target(
            name: "StarlingMembershipSim", dependencies: ["StarlingMembership"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "starling-swim-sim", dependencies: ["StarlingMembership", "StarlingMembershipSim"],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "starling-gossip-node",
            dependencies: [
                "StarlingGossip", "StarlingMembership",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),

        // MARK: Test kit and tests
        .target(
            name: "StarlingTestKit", dependencies: ["StarlingCore", "StarlingStorage"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingCoreTests", dependencies: ["StarlingCore", "StarlingTestKit"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingChunkTests", dependencies: ["StarlingChunk", "StarlingTestKit"],
            resources: [.copy("Fixtures")], swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingStorageTests",
            dependencies: ["StarlingStorage", "StarlingRocksDB", "StarlingTestKit"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingIngestTests",
            dependencies: ["StarlingIngest", "StarlingProto", "StarlingCompression", "StarlingTestKit"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingMembershipTests",
            dependencies: [
                "StarlingMembership", "StarlingMembershipSim", "StarlingGossip", "StarlingTestKit", "starling-gossip-node",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingPlacementTests", dependencies: ["StarlingPlacement", "StarlingTestKit"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingPeerWireTests",
            dependencies: ["StarlingPeerWire", "StarlingCompression", "StarlingTestKit"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingPeerTests",
            dependencies: [
                "StarlingPeer", "StarlingPeerWire", "StarlingPlacement", "StarlingTestKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingClusterTests",
            dependencies: ["StarlingCluster", "StarlingStorage", "StarlingPeerWire", "StarlingPlacement", "StarlingTestKit"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingAlertingTests",
            dependencies: ["StarlingAlerting", "StarlingPromQL", "StarlingTestKit", .product(name: "Yams", package: "Yams")],
            exclude: ["RuleTests"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingPromQLTests",
            dependencies: ["StarlingPromQL", "StarlingStorage", "StarlingTestKit"],
            resources: [.copy("Scripts")], swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingHTTPTests",
            dependencies: [
                "StarlingHTTP", "StarlingNode", "StarlingTestKit", "StarlingProto", "StarlingCompression",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StarlingIntegrationTests",
            dependencies: [
                "starling", "StarlingCore", "StarlingTestKit", "StarlingProto", "StarlingCompression",
                // StarlingNode and Yams: DeploymentFilesTests loads Docker/ and Kubernetes files
                // with the node's own configuration loader.
                "StarlingNode",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
            ],
            exclude: ["Support"],
            swiftSettings: swiftSettings),
    ]
)
