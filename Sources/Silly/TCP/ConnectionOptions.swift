import NIOCore

/// Per-connection limits, given to ``TCP/listen(_:backlog:reusePort:proxyProtocol:tls:options:group:logger:accept:)`` or
/// ``TCP/connect(_:timeout:tls:options:group:)``.
public struct ConnectionOptions: Sendable {
    /// The longest line `read(until:)` searches before it fails with ``SillyError/lineTooLong(limit:)``.
    /// Cannot be negative (a precondition, as for `read(until:maxLength:)`).
    public var maxLineLength: Int = 64 * 1024 {
        didSet { precondition(self.maxLineLength >= 0, "maxLineLength cannot be negative") }
    }
    /// Stop reading from the socket while this many bytes are buffered and no read is waiting,
    /// so TCP flow control slows the peer (the tutorial framework's `conn:limit`). The reads
    /// already asked for still land: the buffer can pass the limit by up to 256 KiB (four reads
    /// of at most 64 KiB). When the peer ends its stream, SwiftNIO reads at once all the kernel
    /// still holds for the connection (its socket receive buffer: 128 KiB by default on Linux,
    /// more if the kernel grew it, up to `net.ipv4.tcp_rmem`'s maximum), so the buffer can then
    /// pass the limit by that much. A waiting read
    /// always gets its bytes, whatever its size. `nil`: no limit, and a peer then fills memory
    /// with whatever a busy handler has not read yet. Cannot be negative (a precondition).
    public var receiveLimit: Int? = 1024 * 1024 {
        didSet { precondition(self.receiveLimit ?? 0 >= 0, "receiveLimit cannot be negative") }
    }
    /// A write that would take the unsent bytes past this fails with ``SillyError/sendQueueFull(limit:)``.
    /// Cannot be negative (a precondition).
    public var sendQueueLimit: Int = 4 * 1024 * 1024 {
        didSet { precondition(self.sendQueueLimit >= 0, "sendQueueLimit cannot be negative") }
    }
    /// ``TCPConnection/waitUntilWritable(timeout:)`` waits while more than `high` bytes are unsent, until
    /// fewer than `low` are (SwiftNIO's write-buffer water marks). A `low` under 1 counts as 1
    /// (wait until everything is sent), as SwiftNIO requires.
    public var writeWatermarks: ClosedRange<Int> = (32 * 1024)...(64 * 1024)
    /// How long `close()` waits for a peer that takes (almost) none of the unsent bytes (or,
    /// once they are sent, for a peer still sending to end its side) before it closes anyway.
    /// A peer that takes at least 64 KiB in each such period, however long it takes in all,
    /// gets every byte. With nothing to drain, the wait is at most 1 s (and `closeLinger` more,
    /// over the whole close, while the peer is still sending).
    public var closeLinger: Duration = .seconds(5)

    /// The defaults: 64 KiB lines, a 1 MiB receive limit, a 4 MiB send queue.
    public init() {}
}
