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
    mutating func record(received: Int, sent: Int) {
        self.bytesReceived += received
        self.bytesSent += sent
        self.messages += 1
    }
}

/// The server's totals, updated by every connection at once: atomics, so no update is lost.
public final class ServerStatistics: Sendable {
    private let open = Atomic<Int>(0)
    private let accepted = Atomic<Int>(0)
    private let rejected = Atomic<Int>(0)
    private let bytesReceived = Atomic<Int>(0)
    private let bytesSent = Atomic<Int>(0)
    private let messages = Atomic<Int>(0)

    public init() {}

    /// Counts a new connection; returns how many are open now, or `nil` (and counts a rejection)
    /// if that would pass `limit`.
    func admit(limit: Int) -> Int? {
        let now = self.open.add(1, ordering: .relaxed).newValue
        guard now <= limit else {
            self.open.subtract(1, ordering: .relaxed)
            self.rejected.add(1, ordering: .relaxed)
            return nil
        }
        self.accepted.add(1, ordering: .relaxed)
        return now
    }

    /// Counts a closed connection and adds its traffic; returns how many remain open.
    func release(_ connection: ConnectionStatistics) -> Int {
        self.bytesReceived.add(connection.bytesReceived, ordering: .relaxed)
        self.bytesSent.add(connection.bytesSent, ordering: .relaxed)
        self.messages.add(connection.messages, ordering: .relaxed)
        return self.open.subtract(1, ordering: .relaxed).newValue
    }

    /// The totals now.
    public var snapshot: Snapshot {
        Snapshot(
            open: self.open.load(ordering: .relaxed),
            accepted: self.accepted.load(ordering: .relaxed),
            rejected: self.rejected.load(ordering: .relaxed),
            bytesReceived: self.bytesReceived.load(ordering: .relaxed),
            bytesSent: self.bytesSent.load(ordering: .relaxed),
            messages: self.messages.load(ordering: .relaxed)
        )
    }

    /// The server's totals at one moment (connections that are still open count when they close).
    public struct Snapshot: Sendable, Equatable, CustomStringConvertible {
        /// Connections open now.
        public var open: Int
        /// Connections admitted since start.
        public var accepted: Int
        /// Connections turned away by `maxConnections`.
        public var rejected: Int
        /// Bytes received on closed connections.
        public var bytesReceived: Int
        /// Bytes sent on closed connections.
        public var bytesSent: Int
        /// Messages answered on closed connections.
        public var messages: Int

        public var description: String {
            "connections open \(self.open), accepted \(self.accepted), rejected \(self.rejected); "
                + "received \(self.bytesReceived) bytes, sent \(self.bytesSent) bytes, messages \(self.messages)"
        }
    }
}
