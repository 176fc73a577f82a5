#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Every failure the framework reports, as one typed enum.
///
/// Connection errors read like the tutorial's: a read on a stream the peer closed fails with
/// ``endOfStream`` ("socket closed"), one on a connection closed by this side with ``activeClosed``
/// ("active closed"), a reset with ``connectionReset`` ("Connection reset by peer").
///
/// Cases that carry text are `indirect`: the enum stays 9 bytes, so the `Result`s on the read
/// path, and the async frames that hold them for as long as a connection waits, stay small.
public enum SillyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The peer closed its side of the stream and every byte it sent has been read.
    case endOfStream
    /// This side closed the connection (`close()`), possibly while a read was waiting.
    case activeClosed
    /// The peer reset the connection (ECONNRESET).
    case connectionReset
    /// A read, or `waitUntilWritable(timeout:)`, did not complete within its timeout.
    case timedOut
    /// No delimiter was found within `limit` bytes; the bytes stay buffered.
    case lineTooLong(limit: Int)
    /// A write would take the unsent bytes past the connection's send-queue limit.
    case sendQueueFull(limit: Int)
    /// A read or `waitUntilWritable` that would have to wait, or a `TCP.connect`, in a cancelled
    /// task. (A read already waiting is not ended by cancellation: see `TCPConnection.close()`.)
    case cancelled
    /// A second read was started while one was still waiting; a connection has one reader at a time.
    case readInProgress
    /// Any other operating-system failure, with its errno.
    case system(errno: Int32)
    /// A failure that carries no errno (from the transport), described.
    indirect case failed(String)
    /// An address string that is not `host:port` with a valid port.
    indirect case invalidAddress(String, reason: String)
    /// Binding failed because the address is already in use (EADDRINUSE).
    indirect case addressInUse(String)
    /// Binding the address needs a privilege this process lacks (EACCES): a port below 1024
    /// (the kernel's `ip_unprivileged_port_start`) needs root or `CAP_NET_BIND_SERVICE`.
    indirect case permissionDenied(String)
    /// Nothing listens at the address (ECONNREFUSED).
    indirect case connectionRefused(String)
    /// The host name could not be resolved.
    indirect case unresolvable(String)
    /// The connection was not established within the connect timeout.
    indirect case connectTimeout(String)
    /// TLS failed: a certificate or key that cannot be loaded, a failed handshake (a peer that
    /// does not speak TLS, a certificate that does not verify), a connection cut without
    /// `close_notify`.
    indirect case tls(String)

    public var description: String {
        switch self {
        case .endOfStream: return "socket closed"
        case .activeClosed: return "active closed"
        case .connectionReset: return "Connection reset by peer"
        case .timedOut: return "read timed out"
        case .lineTooLong(let limit): return "line too long: no delimiter within \(limit) bytes"
        case .sendQueueFull(let limit): return "send queue full: the write would leave more than \(limit) bytes unsent"
        case .cancelled: return "cancelled"
        case .readInProgress: return "another read is already waiting on this connection"
        case .system(let code): return String(cString: strerror(code))
        case .failed(let reason): return reason
        case .invalidAddress(let address, let reason): return "invalid address '\(address)': \(reason)"
        case .addressInUse(let address): return "address already in use: \(address)"
        case .permissionDenied(let address):
            return "permission denied: \(address) (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
        case .connectionRefused(let address): return "connection refused: \(address)"
        case .unresolvable(let address): return "cannot resolve host: \(address)"
        case .connectTimeout(let address): return "connect timed out: \(address)"
        case .tls(let reason): return "TLS: \(reason)"
        }
    }
}
