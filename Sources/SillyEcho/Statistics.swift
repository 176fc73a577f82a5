import Synchronization

/// One connection's traffic, kept by its handler and logged when it closes.
public struct ConnectionStatistics: Sendable, Equatable {
    public var bytesReceived = 0
    public var bytesSent = 0
    public var messages = 0

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
        public var open: Int
        public var accepted: Int
        public var rejected: Int
        public var bytesReceived: Int
        public var bytesSent: Int
        public var messages: Int

        public var description: String {
            "connections open \(self.open), accepted \(self.accepted), rejected \(self.rejected); "
                + "received \(self.bytesReceived) bytes, sent \(self.bytesSent) bytes, messages \(self.messages)"
        }
    }
}
