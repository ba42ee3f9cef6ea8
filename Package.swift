// swift-tools-version:6.1
import Foundation
import PackageDescription

// The DocC plugin is resolved only on request (INVERTNN_DOCC=1 swift package generate-documentation),
// so ordinary builds and tests fetch nothing extra.
let documentationDependencies: [Package.Dependency] = ProcessInfo.processInfo.environment["INVERTNN_DOCC"] != nil
    ? [.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0")]
    : []

let package = Package(
    name: "InvertNN",
    products: [
        .library(name: "InvertNN", targets: ["InvertNN"]),
        .library(name: "InvertNNPlots", targets: ["InvertNNPlots"]),
        .executable(name: "invertnn", targets: ["InvertNNCLI"]),
        .executable(name: "invertnn-bench", targets: ["InvertNNBenchmarks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        // RFC 4180 CSV (quoted fields, doubled quotes, CRLF) for headers and quoted data files.
        .package(url: "https://github.com/yaslab/CSV.swift", from: "2.5.2"),
        // Test-only: property-based checks over every layer (Tests/InvertNNTests/Properties).
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ] + documentationDependencies,
    targets: [
        // The C boundary: OpenBLAS (CBLAS) and LAPACKE. Only Sources/InvertNN/LinearAlgebra imports it.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        // zlib for reading .gz datasets (InvertNN) and writing PNG (InvertNNPlots: deflate + crc32).
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "InvertNN",
            dependencies: [
                "CBLAS", "CZlib",
                .product(name: "Numerics", package: "swift-numerics"),
                .product(name: "CSV", package: "CSV.swift"),
            ],
            resources: [.copy("Resources/digits.csv.gz"), .copy("Resources/mnist_5k.csv.gz")]
        ),
        // Greyscale pictures of samples, densities and training curves, written as PNG. Built on
        // the library's public API only; the model core knows nothing of pictures.
        .target(
            name: "InvertNNPlots",
            dependencies: [
                "InvertNN", "CZlib",
                .product(name: "Numerics", package: "swift-numerics"),
            ]
        ),
        // Data-parallel training over Open MPI, loaded at run time (dlopen): builds without MPI headers.
        .target(
            name: "InvertNNDistributed",
            dependencies: ["InvertNN"]
        ),
        // glibc heap settings (mallopt, malloc_trim) for the executables: process-wide, so not
        // the library's to make.
        .target(name: "CHeapSettings"),
        // OPENBLAS_CORETYPE for CPUs OpenBLAS does not recognize, chosen the same way by both
        // executables (process-wide: it re-executes the process), so the benchmark measures the
        // kernels the CLI runs.
        .target(name: "BLASCoreType", dependencies: ["InvertNN"]),
        .executableTarget(
            name: "InvertNNCLI",
            dependencies: [
                "InvertNN", "InvertNNDistributed", "InvertNNPlots", "CHeapSettings", "BLASCoreType",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The benchmark's C reference GEMM (the same call made from C).
        .target(
            name: "CReferenceGemm",
            dependencies: ["CBLAS"],
            path: "Benchmarks/CReferenceGemm"
        ),
        .target(
            name: "CAllocationCounter",
            path: "Benchmarks/CAllocationCounter"
        ),
        .executableTarget(
            name: "InvertNNBenchmarks",
            dependencies: [
                "InvertNN", "CReferenceGemm", "CAllocationCounter", "CHeapSettings", "BLASCoreType",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/InvertNNBenchmarks"
        ),
        .testTarget(
            name: "InvertNNTests",
            dependencies: [
                "InvertNN", "InvertNNPlots", "CBLAS", "CZlib", "BLASCoreType",
                .product(name: "Numerics", package: "swift-numerics"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            // Checkpoints written by earlier builds, with the results they must keep giving.
            resources: [.copy("Fixtures")]
        ),
    ]
)
