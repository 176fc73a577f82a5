import CoreMetrics
import Synchronization

/// Publishes an ``EchoServer``'s statistics through swift-metrics, to whatever backend the
/// factory is (Prometheus for `silly-echo --metrics-addr`; nothing when none is bootstrapped).
///
/// The per-message path only adds to ``ServerStatistics``' atomics, whether metrics are on or
/// not; ``publish(_:)`` hands the change since the last call to the swift-metrics counters
/// (every second, and before each scrape). Connection lifetimes are recorded as they end.
final class EchoMetrics: Sendable {
    private let open: Gauge
    private let accepted: Counter
    private let rejected: Counter
    private let bytesReceived: Counter
    private let bytesSent: Counter
    private let messages: Counter
    private let errors: [ErrorKind: Counter]
    private let healthChecks: Counter
    private let lifetimes: CoreMetrics.Timer
    private let published = Mutex(ServerStatistics.Snapshot.zero)

    /// The metric names, as Prometheus shows them.
    enum Name {
        static let open = "silly_echo_connections_open"
        static let accepted = "silly_echo_connections_accepted_total"
        static let rejected = "silly_echo_connections_rejected_total"
        static let bytesReceived = "silly_echo_received_bytes_total"
        static let bytesSent = "silly_echo_sent_bytes_total"
        static let messages = "silly_echo_messages_total"
        static let errors = "silly_echo_errors_total"
        static let healthChecks = "silly_echo_health_checks_total"
        static let lifetimes = "silly_echo_connection_duration_seconds"
    }

    init(factory: any MetricsFactory) {
        self.open = Gauge(label: Name.open, factory: factory)
        self.accepted = Counter(label: Name.accepted, factory: factory)
        self.rejected = Counter(label: Name.rejected, factory: factory)
        self.bytesReceived = Counter(label: Name.bytesReceived, factory: factory)
        self.bytesSent = Counter(label: Name.bytesSent, factory: factory)
        self.messages = Counter(label: Name.messages, factory: factory)
        var errors: [ErrorKind: Counter] = [:]
        for kind in ErrorKind.allCases {
            errors[kind] = Counter(label: Name.errors, dimensions: [("kind", kind.rawValue)], factory: factory)
        }
        self.errors = errors
        self.healthChecks = Counter(label: Name.healthChecks, factory: factory)
        self.lifetimes = CoreMetrics.Timer(label: Name.lifetimes, factory: factory)
    }

    /// Hands the counters' growth since the last call to swift-metrics.
    func publish(_ now: ServerStatistics.Snapshot) {
        self.published.withLock { before in
            self.open.record(now.open)
            Self.add(now.accepted - before.accepted, to: self.accepted)
            Self.add(now.rejected - before.rejected, to: self.rejected)
            Self.add(now.bytesReceived - before.bytesReceived, to: self.bytesReceived)
            Self.add(now.bytesSent - before.bytesSent, to: self.bytesSent)
            Self.add(now.messages - before.messages, to: self.messages)
            Self.add(now.healthChecks - before.healthChecks, to: self.healthChecks)
            for (kind, counter) in self.errors {
                Self.add(now.errors[kind, default: 0] - before.errors[kind, default: 0], to: counter)
            }
            before = now
        }
    }

    /// Records how long a connection was open.
    func recordLifetime(_ lifetime: Duration) {
        let (seconds, attoseconds) = lifetime.components
        self.lifetimes.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    private static func add(_ delta: Int, to counter: Counter) {
        if delta > 0 { counter.increment(by: delta) }
    }
}
