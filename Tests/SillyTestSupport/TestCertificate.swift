import Foundation

/// A self-signed certificate for `localhost` and 127.0.0.1, made at test time with `openssl`
/// (`.ci/run` installs it; tests that need one skip without it unless `SILLY_REQUIRE_CLIENTS=1`).
public final class TestCertificate: Sendable {
    public let certificateFile: String
    public let privateKeyFile: String
    private let folder: URL

    /// Whether a certificate can be made here.
    public static var available: Bool {
        ProcessInfo.processInfo.environment["SILLY_REQUIRE_CLIENTS"] == "1" || Self.openssl != nil
    }

    static var openssl: String? {
        ["/usr/bin/openssl", "/usr/local/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Makes one: `openssl` runs on a thread of its own, not on one of the few the concurrency
    /// pool has, which every other test running meanwhile needs.
    public static func make() async throws -> TestCertificate {
        try await offThePool { try TestCertificate() }
    }

    private init() throws {
        self.folder = FileManager.default.temporaryDirectory.appendingPathComponent("silly-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.folder, withIntermediateDirectories: true)
        self.certificateFile = self.folder.appendingPathComponent("cert.pem").path
        self.privateKeyFile = self.folder.appendingPathComponent("key.pem").path
        guard let openssl = Self.openssl else { throw CertificateError("openssl is not installed") }
        let process = try ChildProcess(openssl, [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", self.privateKeyFile, "-out", self.certificateFile, "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CertificateError("openssl req failed") }
    }

    deinit {
        try? FileManager.default.removeItem(at: self.folder)
    }

    struct CertificateError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
