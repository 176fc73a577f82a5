import NIOCore
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// TLS 1.2 or 1.3 for a listener or an outgoing connection (swift-nio-ssl, BoringSSL): reads and
/// writes stay plain bytes; the handshake, encryption and `close_notify` happen beneath them.
///
/// ```swift
/// let tls = try TLSOptions.server(certificateFile: "cert.pem", privateKeyFile: "key.pem")
/// let listener = try await TCP.listen("0.0.0.0:9999", tls: tls) { conn in ... }
/// let client = try await TCP.connect("localhost:9999", tls: try .client(trustedCertificateFile: "cert.pem"))
/// ```
public struct TLSOptions: Sendable {
    let context: NIOSSLContext
    let serverName: String?

    /// A server's TLS, from PEM files: the certificate chain (leaf first) and its private key.
    /// - Throws: ``SillyError/tls(_:)`` naming the file that cannot be read or parsed, or a
    ///   key that does not belong to the certificate.
    public static func server(certificateFile: String, privateKeyFile: String) throws(SillyError) -> TLSOptions {
        let chain = try Self.load("certificate", certificateFile) { try NIOSSLCertificate.fromPEMFile($0) }
        guard !chain.isEmpty else { throw .tls("no certificate in \(certificateFile)") }
        let key = try Self.load("private key", privateKeyFile) { try NIOSSLPrivateKey(file: $0, format: .pem) }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = .tlsv12
        do {
            return TLSOptions(context: try NIOSSLContext(configuration: configuration), serverName: nil)
        } catch {
            // Both files loaded: what fails now is their pairing (most often a key of another certificate).
            throw .tls("cannot use the private key in \(privateKeyFile) with the certificate in \(certificateFile): \(SillyError.describeTLS(error))")
        }
    }

    /// A client's TLS. The server's certificate is verified against the system's certificate
    /// authorities, or those in `trustedCertificateFile` (PEM), and must name the host connected
    /// to (or `serverName`). `verifyCertificate: false` accepts any certificate, a self-signed
    /// test server's: the traffic is encrypted, but the server is not authenticated.
    /// - Throws: ``SillyError/tls(_:)`` if `trustedCertificateFile` cannot be read.
    public static func client(
        trustedCertificateFile: String? = nil,
        verifyCertificate: Bool = true,
        serverName: String? = nil
    ) throws(SillyError) -> TLSOptions {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let trustedCertificateFile {
            let roots = try Self.load("certificate", trustedCertificateFile) { try NIOSSLCertificate.fromPEMFile($0) }
            configuration.trustRoots = .certificates(roots)
        }
        if !verifyCertificate {
            configuration.certificateVerification = .none
        }
        return TLSOptions(context: try Self.context(configuration), serverName: serverName)
    }

    /// The handler for the server side of an accepted connection.
    func serverHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: self.context)
    }

    /// The handler for a connection to `host` (its name is sent as SNI and verified, unless it is
    /// an IP address: then the certificate must name that address).
    func clientHandler(host: String) throws -> NIOSSLClientHandler {
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        return try NIOSSLClientHandler(context: self.context, serverHostname: self.serverName ?? (isAddress ? nil : host))
    }

    private static func load<T>(_ what: String, _ path: String, _ body: (String) throws -> T) throws(SillyError) -> T {
        guard access(path, R_OK) == 0 else {
            throw .tls("cannot read \(what) file \(path): \(String(cString: strerror(errno)))")
        }
        do {
            return try body(path)
        } catch {
            throw .tls("cannot load \(what) from \(path): \(SillyError.describeTLS(error))")
        }
    }

    private static func context(_ configuration: TLSConfiguration) throws(SillyError) -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw .tls(describing: error)
        }
    }
}
