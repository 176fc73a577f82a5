/// What a PROXY protocol header (HAProxy's v1 text or v2 binary form) told about a connection
/// that a load balancer relayed: who the original client was, and which address it reached.
public struct ProxyHeader: Sendable, Hashable {
    /// The header's form.
    public enum Version: Int, Sendable, Hashable {
        /// `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`
        case v1 = 1
        /// The 16-byte binary header and its address block.
        case v2 = 2
    }

    /// Whether the header speaks for a client.
    public enum Command: Sendable, Hashable {
        /// A relayed connection: `source` is the original client.
        case proxy
        /// The proxy's own connection (a health check): the socket's peer is the real peer.
        case local
    }

    /// The header's form.
    public var version: Version
    /// A relayed connection, or the proxy's own.
    public var command: Command
    /// The original client; `nil` for `LOCAL`, v1 `UNKNOWN`, and address families other than
    /// TCP over IPv4 or IPv6.
    public var source: Endpoint?
    /// The address the client connected to, at the proxy (`nil` when `source` is).
    public var destination: Endpoint?

    /// A header with the given fields.
    public init(version: Version, command: Command, source: Endpoint?, destination: Endpoint?) {
        self.version = version
        self.command = command
        self.source = source
        self.destination = destination
    }
}

/// Why a connection's PROXY protocol header was refused; the connection is closed without
/// reaching the `accept` handler.
public enum ProxyHeaderError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The first bytes are neither a v1 nor a v2 header.
    case missing
    /// The bytes look like a header but break the specification, for the reason given.
    case malformed(String)
    /// The header is longer than the listener accepts (`maxHeaderLength`; v1 lines are at most 107 bytes).
    case oversized(limit: Int)
    /// The peer ended its stream before the header was complete.
    case truncated
    /// The header was not complete within the listener's `headerTimeout`.
    case timedOut

    public var description: String {
        switch self {
        case .missing: return "no PROXY protocol header"
        case .malformed(let reason): return "malformed PROXY protocol header: \(reason)"
        case .oversized(let limit): return "PROXY protocol header longer than \(limit) bytes"
        case .truncated: return "connection ended inside the PROXY protocol header"
        case .timedOut: return "no complete PROXY protocol header in time"
        }
    }
}

/// A listener's PROXY protocol setting: every connection must begin with a header (the
/// specification forbids guessing), and ``TCPConnection/remoteAddress`` is then the original
/// client's. Turn it on only for listeners that only trusted proxies can reach.
public struct ProxyProtocolOptions: Sendable {
    /// How long a connection may take to send its complete header (the specification asks for
    /// at least 3 seconds; nginx waits 30).
    public var headerTimeout: Duration = .seconds(10)
    /// The longest v2 header (16 bytes, addresses and TLVs) accepted. At least 232: the
    /// largest address block, a Unix socket pair's, must fit.
    public var maxHeaderLength: Int = 4096 {
        didSet { self.maxHeaderLength = max(self.maxHeaderLength, 232) }
    }
    /// Called, on the connection's event loop, for each connection refused for its header, with
    /// the socket's peer; the listener also logs one line. A connection that closes before sending
    /// a single byte (a plain TCP health check) is neither logged nor reported.
    public var onRejected: (@Sendable (ProxyHeaderError, Endpoint?) -> Void)?

    /// A 10-second header timeout and 4 KiB headers.
    public init(onRejected: (@Sendable (ProxyHeaderError, Endpoint?) -> Void)? = nil) {
        self.onRejected = onRejected
    }
}
