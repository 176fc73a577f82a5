import Silly

/// How an ``EchoServer`` answers each line.
public enum EchoMode: String, Sendable, CaseIterable {
    /// The tutorial's echo: every line back unchanged, delimiter included.
    case line
    /// The tutorial's fourth exercise: a banner, a `> ` prompt, `help`, `time`, `quit`,
    /// and `Echo: <line>` for anything else.
    case command
    /// RFC 862 echo: bytes back as they arrive, no framing, binary-safe.
    case raw
}

/// Everything an ``EchoServer`` is told, with the defaults `silly-echo` shows in `--help`.
public struct EchoConfiguration: Sendable {
    /// Where to listen: any address form `TCP.listen` takes.
    public var address = "127.0.0.1:9999"
    /// How lines are answered.
    public var mode = EchoMode.line
    /// Close a connection after this long without a line (or, in raw mode, a byte); `nil`: never.
    public var idleTimeout: Duration? = .seconds(300)
    /// A line longer than this (delimiter included) is logged and its connection closed.
    public var maxLineLength = 64 * 1024
    /// Beyond this many open connections a new client is told the server is full and closed.
    public var maxConnections = 10_000
    /// Log the server's totals this often; `nil`: only at shutdown.
    public var statsInterval: Duration? = nil
    /// How long open connections may take, after a shutdown signal, to finish what they received.
    public var shutdownGrace: Duration = .seconds(5)
    /// How long a closing connection waits for a client that takes none of its last answers
    /// (``ConnectionOptions/closeLinger``).
    public var closeLinger: Duration = .seconds(5)
    /// The kernel's queue of connections not yet accepted.
    public var backlog = 4096
    /// Event loops serving the connections; `nil`: one per core.
    public var threads: Int? = nil
    /// Share the port with other processes listening with it too (`SO_REUSEPORT`).
    public var reusePort = false
    /// Expect a PROXY protocol header (v1 or v2) on every connection, from a load balancer such
    /// as HAProxy (`send-proxy-v2`): logs and statistics then show the original client.
    public var proxyProtocol = false
    /// With `proxyProtocol`: how long a connection may take to send its header.
    public var proxyHeaderTimeout: Duration = .seconds(10)
    /// Serve TLS with these options; `nil`: plain TCP.
    public var tls: TLSOptions? = nil

    /// The defaults `silly-echo` shows in `--help`.
    public init() {}

    /// The connection limits the core applies: lines bounded by `maxLineLength`, and reading
    /// paused once 64 KiB wait unread while no read waits (a handler waiting for a client to take
    /// its echoes). A waiting read is served past that limit, up to `maxLineLength`, so the limit
    /// need not grow with it: one that did would let every client that does not read hold a
    /// whole `--max-line` of memory. The send queue takes the longest answer (a `--max-line`
    /// line, `Echo: ` before it in command mode) on top of the high water mark's worth that a
    /// session lets wait unsent before it waits itself: for lines past 4 MiB its limit grows.
    var connectionOptions: ConnectionOptions {
        var options = ConnectionOptions()
        options.maxLineLength = self.maxLineLength
        options.receiveLimit = 64 * 1024
        options.closeLinger = self.closeLinger
        // (`Echo: `, and a line end after a last line without one: 16 bytes is room enough.)
        let longestAnswer = self.maxLineLength.addingReportingOverflow(16)
        let needed = longestAnswer.partialValue.addingReportingOverflow(options.writeWatermarks.upperBound)
        options.sendQueueLimit = longestAnswer.overflow || needed.overflow ? .max : max(options.sendQueueLimit, needed.partialValue)
        return options
    }
}

extension Duration {
    /// How a log line says a duration: `300 s`, `2.5 s`.
    var logDescription: String {
        let seconds = self / .seconds(1)
        let whole = seconds.rounded()
        return (seconds == whole && abs(whole) < 1e15 ? String(Int64(whole)) : String(seconds)) + " s"
    }
}
