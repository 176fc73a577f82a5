import NIOCore
import Silly
import Synchronization

/// One connection's traffic, kept by its handler and logged when it closes.
public struct ConnectionStatistics: Sendable, Equatable {
    /// Bytes of the messages received.
    public var bytesReceived = 0
    /// Bytes of the replies queued.
    public var bytesSent = 0
    /// Messages answered.
    public var messages = 0

    /// Nothing counted yet.
    public init() {}

    /// Counts one message of `received` bytes answered with `sent` bytes.
    mutating func record(received: Int, sent: Int, messages: Int = 1) {
        self.bytesReceived += received
        self.bytesSent += sent
        self.messages += messages
    }
}

/// Why the server ended a connection abnormally, as `/metrics` labels it (`kind="..."`).
public enum ErrorKind: String, Sendable, CaseIterable {
    /// The client reset the connection.
    case reset
    /// A line longer than `maxLineLength`.
    case lineTooLong = "line_too_long"
    /// No line (or byte) within `idleTimeout`.
    case idleTimeout = "idle_timeout"
    /// The client did not read what it was sent and the send queue filled up.
    case sendQueueFull = "send_queue_full"
    /// A missing or bad PROXY protocol header (with `proxyProtocol` on).
    case proxyHeader = "proxy_header"
    /// A failed TLS handshake (a plain-text client, say) or a TLS error later on.
    case tls
    /// Any other read or write failure.
    case other

    /// The kind of a read or write failure that ended a connection.
    init(_ error: SillyError) {
        switch error {
        case .connectionReset: self = .reset
        case .lineTooLong: self = .lineTooLong
        case .timedOut: self = .idleTimeout
        case .sendQueueFull: self = .sendQueueFull
        case .tls: self = .tls
        default: self = .other
        }
    }
}

/// One event loop's share of the per-message counters. Each connection adds to its own loop's
/// (relaxed atomic adds on cache lines no other core writes), so counting every message as it
/// goes costs the same on one core or many; readers sum the loops.
final class TrafficCounters: Sendable {
    let bytesReceived = Atomic<Int>(0)
    let bytesSent = Atomic<Int>(0)
    let messages = Atomic<Int>(0)
    // Keeps the next loop's counters, allocated beside these, off their cache line.
    private let padding: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)

    /// Counts one message answered (or, with `messages` 0, bytes sent unasked: a banner, a prompt).
    @inline(__always)
    func record(received: Int, sent: Int, messages: Int = 1) {
        self.bytesReceived.add(received, ordering: .relaxed)
        self.bytesSent.add(sent, ordering: .relaxed)
        self.messages.add(messages, ordering: .relaxed)
    }
}

/// The server's totals, updated by every connection as it goes: atomics, so no update is lost.
/// `--stats-interval` logs them and ``EchoMetrics`` publishes them through swift-metrics.
public final class ServerStatistics: Sendable {
    private let open = Atomic<Int>(0)
    private let accepted = Atomic<Int>(0)
    private let rejected = Atomic<Int>(0)
    private let healthChecks = Atomic<Int>(0)
    /// Health-check connections open: they count toward the limit too.
    private let healthChecksOpen = Atomic<Int>(0)
    private let loops = Mutex<[ObjectIdentifier: TrafficCounters]>([:])
    // Errors are rare: a lock is cheap enough.
    private let errors = Mutex<[ErrorKind: Int]>([:])

    public init() {}

    /// Counts a new connection; returns how many are open now, or `nil` (and counts a rejection)
    /// if that would pass `limit` (health checks included).
    func admit(limit: Int) -> Int? {
        guard let now = self.takePlace(in: self.open, besides: self.healthChecksOpen, limit: limit) else { return nil }
        self.accepted.add(1, ordering: .relaxed)
        return now
    }

    /// Counts a connection that a load balancer made for a health check (a PROXY `LOCAL` header);
    /// `false` (and counts a rejection) if it would pass `limit`, clients included.
    func admitHealthCheck(limit: Int) -> Bool {
        guard self.takePlace(in: self.healthChecksOpen, besides: self.open, limit: limit) != nil else { return false }
        self.healthChecks.add(1, ordering: .relaxed)
        return true
    }

    /// Adds one to `mine` if, with `others`, they stay within `limit`: the new count, or `nil`
    /// (and a rejection counted). Each kind adds itself, then reads the other (sequentially
    /// consistent): of two that race for the last place, at least one sees the other.
    private func takePlace(in mine: borrowing Atomic<Int>, besides others: borrowing Atomic<Int>, limit: Int) -> Int? {
        let now = mine.add(1, ordering: .sequentiallyConsistent).newValue
        guard now + others.load(ordering: .sequentiallyConsistent) <= limit else {
            mine.subtract(1, ordering: .relaxed)
            self.rejected.add(1, ordering: .relaxed)
            return nil
        }
        return now
    }

    /// Counts a health-check connection closed.
    func releaseHealthCheck() {
        self.healthChecksOpen.subtract(1, ordering: .relaxed)
    }

    /// The counters of the connections on `loop` (looked up once per connection).
    func traffic(on loop: any EventLoop) -> TrafficCounters {
        self.loops.withLock { counters in
            if let existing = counters[ObjectIdentifier(loop)] { return existing }
            let new = TrafficCounters()
            counters[ObjectIdentifier(loop)] = new
            return new
        }
    }

    /// Counts a connection ended by `kind`.
    func count(_ kind: ErrorKind) {
        self.errors.withLock { $0[kind, default: 0] += 1 }
    }

    /// Counts a closed connection; returns how many remain open.
    func release() -> Int {
        self.open.subtract(1, ordering: .relaxed).newValue
    }

    /// The totals now.
    public var snapshot: Snapshot {
        let loops = self.loops.withLock { Array($0.values) }
        return Snapshot(
            open: self.open.load(ordering: .relaxed),
            accepted: self.accepted.load(ordering: .relaxed),
            rejected: self.rejected.load(ordering: .relaxed),
            bytesReceived: loops.reduce(0) { $0 + $1.bytesReceived.load(ordering: .relaxed) },
            bytesSent: loops.reduce(0) { $0 + $1.bytesSent.load(ordering: .relaxed) },
            messages: loops.reduce(0) { $0 + $1.messages.load(ordering: .relaxed) },
            errors: self.errors.withLock { $0 },
            healthChecks: self.healthChecks.load(ordering: .relaxed)
        )
    }

    /// The server's totals at one moment.
    public struct Snapshot: Sendable, Equatable, CustomStringConvertible {
        /// Connections open now.
        public var open: Int
        /// Connections admitted since start.
        public var accepted: Int
        /// Connections turned away by `maxConnections`.
        public var rejected: Int
        /// Bytes of the messages received.
        public var bytesReceived: Int
        /// Bytes of the replies queued.
        public var bytesSent: Int
        /// Messages answered.
        public var messages: Int
        /// Connections ended by each kind of error.
        public var errors: [ErrorKind: Int]
        /// Health-check connections of a load balancer (PROXY `LOCAL`), counted apart from clients.
        public var healthChecks: Int

        /// Nothing counted: what the metrics start from.
        static let zero = Snapshot(
            open: 0, accepted: 0, rejected: 0, bytesReceived: 0, bytesSent: 0, messages: 0, errors: [:], healthChecks: 0)

        public var description: String {
            let errors = self.errors.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }
            return "connections open \(self.open), accepted \(self.accepted), rejected \(self.rejected); "
                + "received \(self.bytesReceived) bytes, sent \(self.bytesSent) bytes, messages \(self.messages); "
                + "errors: \(errors.isEmpty ? "none" : errors.joined(separator: ", "))"
                + (self.healthChecks > 0 ? "; health checks \(self.healthChecks)" : "")
        }
    }
}
