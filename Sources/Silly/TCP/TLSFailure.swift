import NIOSSL

extension SillyError {
    /// A TLS failure as a log reader can use it ("handshake failed: WRONG_VERSION_NUMBER"), not
    /// SwiftNIO-SSL's nested enums with the BoringSSL source path and line each error carries.
    static func tls(describing error: any Error) -> SillyError {
        .tls(Self.describeTLS(error))
    }

    /// The text of ``tls(describing:)``, for messages that say more around it.
    static func describeTLS(_ error: any Error) -> String {
        if let ssl = error as? NIOSSLError, case .handshakeFailed(let boring) = ssl {
            return "handshake failed: \(Self.reasons(boring))"
        }
        if let boring = error as? BoringSSLError {
            return Self.reasons(boring)
        }
        // Any other: as SwiftNIO-SSL describes it, without the source paths.
        return "\(error)".replacing(/\ at \/[^\]\s]*:\d+/, with: "")
    }

    private static func reasons(_ error: BoringSSLError) -> String {
        guard case .sslError(let errors) = error, !errors.isEmpty else { return "\(error)" }
        return errors.map { Self.reason(of: "\($0)") }.joined(separator: "; ")
    }

    /// `"Error: 268435703 error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER at
    /// /…/tls_record.cc:127"` → `"WRONG_VERSION_NUMBER"`; `"Error:  EOF during handshake"` (one
    /// SwiftNIO-SSL made) → `"EOF during handshake"`.
    private static func reason(of description: String) -> String {
        if let match = description.firstMatch(of: /error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^\s\]]+)/) {
            return String(match.1)
        }
        return description.replacing(/^Error: \d*\s*/, with: "")
    }
}
