import NIOCore

/// A parsed `host:port` string, before any name is resolved.
///
/// Accepted forms: `127.0.0.1:9999`, `0.0.0.0:8080`, `:8080` (no host), `[::1]:9999`,
/// `localhost:9999`. A port is 0...65535; 0 asks the kernel for an ephemeral port.
struct HostAndPort: Sendable, Equatable {
    /// The host as written, brackets removed; `nil` when the address starts with `:`.
    var host: String?
    var port: Int

    init(host: String?, port: Int) {
        self.host = host
        self.port = port
    }

    init(parsing address: String) throws(SillyError) {
        func invalid(_ reason: String) -> SillyError { .invalidAddress(address, reason: reason) }
        let hostPart: Substring
        let portPart: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]") else { throw invalid("missing ']' after IPv6 address") }
            hostPart = address[address.index(after: address.startIndex)..<close]
            let rest = address[address.index(after: close)...]
            guard rest.hasPrefix(":") else { throw invalid("expected ':port' after ']'") }
            portPart = rest.dropFirst()
            guard !hostPart.isEmpty else { throw invalid("empty IPv6 address") }
            guard hostPart.contains(":") else { throw invalid("brackets are for IPv6 addresses only; write '\(hostPart):\(portPart)'") }
        } else {
            guard let colon = address.lastIndex(of: ":") else { throw invalid("missing ':port'") }
            hostPart = address[..<colon]
            portPart = address[address.index(after: colon)...]
            if hostPart.contains(":") { throw invalid("an IPv6 address must be written in brackets, as [::1]:9999") }
        }
        guard !portPart.isEmpty else { throw invalid("missing port") }
        guard portPart.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portPart) else {
            throw invalid("port '\(portPart)' is not a number")
        }
        guard port <= 65535 else { throw invalid("port \(port) is out of range 0-65535") }
        if hostPart.contains(where: { $0.isWhitespace }) { throw invalid("host contains whitespace") }
        // The C calls beneath would end the name at the first NUL and use what comes before it.
        if hostPart.contains("\0") { throw invalid("host contains a NUL byte") }
        self.host = hostPart.isEmpty ? nil : String(hostPart)
        self.port = port
    }

    /// The socket address to bind or connect to: an IP literal as is, a name resolved
    /// (blocking: used for `listen`, which runs once).
    func resolve(defaultHost: String, original: String) throws(SillyError) -> SocketAddress {
        let host = self.host ?? defaultHost
        if let literal = try? SocketAddress(ipAddress: host, port: self.port) {
            return literal
        }
        do {
            return try SocketAddress.makeAddressResolvingHost(host, port: self.port)
        } catch {
            throw .unresolvable(original)
        }
    }
}

extension TCP {
    /// The socket address that `listen` binds for `address` (same forms, same errors): for the
    /// package's other servers, such as the metrics endpoint.
    package static func listenAddress(_ address: String) throws(SillyError) -> SocketAddress {
        try HostAndPort(parsing: address).resolve(defaultHost: "0.0.0.0", original: address)
    }
}

extension TCP {
    /// Checks `address` as `connect` reads it, without resolving a name: for command lines that
    /// refuse a malformed address before they start (port 0 cannot be connected to).
    package static func checkConnectAddress(_ address: String) throws(SillyError) {
        let parsed = try HostAndPort(parsing: address)
        guard parsed.port != 0 else { throw .invalidAddress(address, reason: "port 0 cannot be connected to") }
    }
}
