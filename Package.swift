// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "kosh",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kosh", targets: ["kosh"]),
        .library(name: "KoshApp", targets: ["KoshApp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // The system's SQLite (Debian: libsqlite3-dev), used through its C API.
        .systemLibrary(name: "CSQLite3", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // QR codes: the system libqrencode (Debian: libqrencode-dev) encodes, the system zlib
        // (Debian: zlib1g-dev) deflates the PNG's pixels. Used by KoshQR only.
        .systemLibrary(name: "CQRencode", pkgConfig: "libqrencode", providers: [.apt(["libqrencode-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Used only by tests (KoshTesting/QRReaders.swift), to read the PNGs back (libpng) and scan them (zbar).
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZBar", pkgConfig: "zbar", providers: [.apt(["libzbar-dev"])]),
        // Pure domain: money, IDs, state machines, fees, posting rules. No I/O, no wire format.
        .target(name: "KoshCore"),
        // The one JSON stack of the wire (HTTP, rails, sandbox, storage's notes): ordered
        // objects, strict parsing with limits. No dependencies.
        .target(name: "KoshJSON"),
        // ISO 8583 messages and their TCP frames (the card acquirer's protocol, issue 13); no dependencies.
        .target(name: "KoshISO8583"),
        // The use cases: one file each (create order, create payment, submit, rail answered,
        // capture, void, refund, settle a refund, the janitor's passes, the outbox, queries).
        // Runs the core's machines against its ports; depends on nothing else.
        .target(name: "KoshFlows", dependencies: ["KoshCore", "KoshJSON"]),
        // Schema, migrations, SQL dialect layer, SQLite and PostgreSQL adapters.
        .target(
            name: "KoshStorage",
            dependencies: [
                "KoshCore", "KoshJSON",
                "CSQLite3",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // QR code images (a UPI intent → PNG): libqrencode's symbol, a 1-bit grayscale PNG
        // deflated by zlib, and a bounded LRU cache of the PNGs.
        .target(name: "KoshQR", dependencies: ["CQRencode", "CZlib"]),
        // The seeded random generator (SplitMix64) of live routing and the sandbox. No dependencies.
        .target(name: "KoshRandom"),
        // Connectors to payment rails: the in-process test rail, and real HTTP connectors to
        // the UPI switch and PSP aggregators (the sandbox), routing and circuit breakers.
        .target(
            name: "KoshRails",
            dependencies: [
                "KoshCore", "KoshJSON", "KoshRandom", "KoshISO8583",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The tokenisation vault (docs/CARDS.md §1): the cardholder-data zone's own service,
        // SQLite file and keys; the rest of Kosh holds only its tokens.
        .target(
            name: "KoshVault",
            dependencies: [
                "KoshCore", "KoshJSON",
                "CSQLite3",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The simulated outside world (docs/SANDBOX.md): a UPI switch, PSP aggregators,
        // banks, payer apps and fault injection, served over HTTP.
        .target(
            name: "KoshSandbox",
            dependencies: [
                "KoshJSON",
                "KoshRandom",
                "KoshISO8583",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // HTTP routes, auth, idempotency, error mapping.
        .target(
            name: "KoshHTTP",
            dependencies: [
                "KoshCore", "KoshFlows", "KoshJSON", "KoshQR",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Composition root.
        .target(
            name: "KoshApp",
            dependencies: [
                "KoshCore", "KoshFlows", "KoshJSON", "KoshStorage", "KoshRails", "KoshHTTP", "KoshSandbox", "KoshVault",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The load tool and micro-benchmarks behind `kosh bench`.
        .target(
            name: "KoshBench",
            dependencies: [
                "KoshCore", "KoshJSON", "KoshStorage", "KoshApp", "KoshQR",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "kosh",
            dependencies: [
                "KoshApp", "KoshBench", "KoshSandbox", "KoshRails", "KoshCore", "KoshFlows", "KoshJSON", "KoshHTTP", "KoshVault",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "KoshTesting",
            dependencies: ["KoshCore", "KoshFlows", "KoshJSON", "KoshStorage", "KoshApp", "KoshVault", "CPNG", "CZBar"]
        ),
        .testTarget(
            name: "KoshCoreTests",
            dependencies: ["KoshCore", "KoshJSON", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(name: "KoshJSONTests", dependencies: ["KoshJSON"]),
        .testTarget(name: "KoshISO8583Tests",
                    dependencies: ["KoshISO8583", .product(name: "PropertyBased", package: "swift-property-based")]),
        // The use cases on the in-memory store, scripted rails and a manual clock: no sockets, no sleeps.
        .testTarget(
            name: "KoshFlowsTests",
            dependencies: ["KoshCore", "KoshFlows", "KoshJSON", "KoshTesting", "KoshHTTP"]
        ),
        .testTarget(
            name: "KoshStorageTests",
            dependencies: ["KoshCore", "KoshStorage", "KoshTesting",
                           .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(name: "KoshRandomTests", dependencies: ["KoshRandom"]),
        // Every PNG read back with libpng and scanned with zbar: the decoded text is the input.
        .testTarget(name: "KoshQRTests", dependencies: ["KoshQR", "KoshTesting", "CPNG", "CZBar"]),
        // The vault over real sockets (TCP and a Unix socket) with the real client, on a stepped clock.
        .testTarget(
            name: "KoshVaultTests",
            dependencies: ["KoshVault", "KoshCore", "KoshJSON", "KoshTesting",
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOHTTP1", package: "swift-nio"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        // The card connector against a fake acquirer (NIO TCP) and a fake ACS (Hummingbird) on loopback.
        .testTarget(
            name: "KoshRailsTests",
            dependencies: ["KoshRails", "KoshCore", "KoshISO8583",
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Hummingbird", package: "hummingbird")]
        ),
        .testTarget(
            name: "KoshSandboxTests",
            dependencies: ["KoshSandbox",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(
            name: "KoshAPITests",
            dependencies: ["KoshApp", "KoshFlows", "KoshJSON", "KoshTesting", "KoshHTTP", "KoshBench", "KoshSandbox", "KoshRails",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOHTTP1", package: "swift-nio"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdTesting", package: "hummingbird"),
                           .product(name: "HTTPTypes", package: "swift-http-types"),
                           .product(name: "Crypto", package: "swift-crypto"),
                           .product(name: "PropertyBased", package: "swift-property-based")]
        ),
    ]
)
