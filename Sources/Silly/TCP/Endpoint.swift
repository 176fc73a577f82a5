import NIOCore

/// An IP address and port, printed the way the tutorial prints `conn.remoteaddr`:
/// `127.0.0.1:54321`, or `[::1]:54321` for IPv6.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// The numeric IP address.
    public let ip: String
    /// The TCP port.
    public let port: Int

    /// An endpoint of the given address and port.
    public init(ip: String, port: Int) {
        self.ip = ip
        self.port = port
    }

    /// The endpoint of a SwiftNIO IP socket address; `nil` for a Unix-domain address. An
    /// IPv4 client of a dual-stack listener (`[::]`) reads as itself, `127.0.0.1`, not as the
    /// IPv4-mapped `::ffff:127.0.0.1`.
    public init?(_ address: SocketAddress?) {
        guard let address, let ip = address.ipAddress, let port = address.port else { return nil }
        let mappedPrefix = "::ffff:"
        if ip.hasPrefix(mappedPrefix) && ip.contains(".") {
            self.init(ip: String(ip.dropFirst(mappedPrefix.count)), port: port)
        } else {
            self.init(ip: ip, port: port)
        }
    }

    public var description: String {
        self.ip.contains(":") ? "[\(self.ip)]:\(self.port)" : "\(self.ip):\(self.port)"
    }
}
