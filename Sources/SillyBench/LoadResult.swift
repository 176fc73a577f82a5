import Histogram

/// What went wrong, by kind, as wrk and redis-benchmark count it.
public struct ErrorCounts: Sendable, Codable, Equatable {
    /// Connects refused, timed out or otherwise failed.
    public var connect = 0
    /// Connections reset by the server.
    public var reset = 0
    /// Echoes that did not come within the read timeout.
    public var timeout = 0
    /// Connections the server closed before the client was done.
    public var closed = 0
    /// Echoes that differed from what was sent (every byte is checked).
    public var mismatch = 0
    /// TLS failures: a certificate that did not verify, a failed handshake.
    public var tls = 0
    /// Other failures (a write refused, an unexpected error).
    public var other = 0

    /// No errors.
    public init() {}

    /// Every error, of any kind.
    public var total: Int { self.connect + self.reset + self.timeout + self.closed + self.mismatch + self.tls + self.other }

    mutating func add(_ other: ErrorCounts) {
        self.connect += other.connect
        self.reset += other.reset
        self.timeout += other.timeout
        self.closed += other.closed
        self.mismatch += other.mismatch
        self.tls += other.tls
        self.other += other.other
    }
}

/// One client's share of a run; merged into a ``LoadResult``. Its round trips go to its event
/// loop's ``LatencyRecorder``, not here.
struct ClientResult: Sendable {
    var messages = 0
    var bytes = 0
    var connectMicroseconds: UInt64?
    var errors = ErrorCounts()
    /// What stopped this client; `nil` if nothing did.
    var failure: ClientFailure?
}

/// The round-trip times of every client on one event loop.
///
/// One histogram per loop, not per client: at three significant digits up to a minute it is a
/// ~200 KiB array, so one per client cost 20 MB at 100 clients (2 GB at 10,000), and each echo
/// recorded into a cold one cost the client two cache misses.
final class LatencyRecorder: @unchecked Sendable {
    // @unchecked: `histogram` is written only on the recorder's loop, by the clients it serves,
    // and read once they have all ended (each ends on that loop and resumes the task that reads).
    @exclusivity(unchecked) var histogram = Histogram<UInt64>.latencyMicroseconds
}

extension Histogram<UInt64> {
    /// Microseconds from 1 µs to a minute, three significant digits.
    static var latencyMicroseconds: Self {
        Histogram(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }
}

/// The outcome of a run: counts, rates, latency percentiles (microseconds), errors by kind.
public struct LoadResult: Sendable {
    /// What was run.
    public var configuration: LoadConfiguration
    /// Echoes received and verified.
    public var messages = 0
    /// Bytes received and verified.
    public var bytes = 0
    /// From the first connect to the last client's end, on a monotonic clock.
    public var elapsed: Duration = .zero
    /// Round-trip time of each verified echo, in microseconds.
    public var latency = Histogram<UInt64>.latencyMicroseconds
    /// Time to connect, per client, in microseconds.
    public var connect = Histogram<UInt64>.latencyMicroseconds
    /// What went wrong, by kind.
    public var errors = ErrorCounts()
    /// What stopped the clients that failed, by kind.
    var failureGroups: [String: FailureGroup] = [:]
    /// Stopped early by ``LoadGenerator/stop()``: the figures cover what ran until then.
    public var interrupted = false

    init(configuration: LoadConfiguration) {
        self.configuration = configuration
    }

    mutating func add(_ client: ClientResult) {
        self.messages += client.messages
        self.bytes += client.bytes
        if let connect = client.connectMicroseconds { self.connect.record(connect) }
        self.errors.add(client.errors)
        if let failure = client.failure {
            self.failureGroups[failure.kind, default: FailureGroup(kind: failure.kind)].add(failure)
        }
    }

    /// What stopped the clients that failed, in words, with how many it stopped. Clients that
    /// failed the same way count under one reason, even when each received its own line cut
    /// short: it quotes what the first of them received (`…, e.g. "c0-de"`).
    public var failures: [String: Int] {
        Dictionary(self.failureGroups.values.map { ($0.reason, $0.clients) }, uniquingKeysWith: +)
    }

    /// ``failures``, the most frequent first.
    public var failuresByCount: [(reason: String, clients: Int)] {
        self.failures.map { (reason: $0.key, clients: $0.value) }
            .sorted { $0.clients != $1.clients ? $0.clients > $1.clients : $0.reason < $1.reason }
    }

    /// `elapsed` in seconds.
    public var seconds: Double { self.elapsed / .seconds(1) }

    /// Verified echoes per second.
    public var messagesPerSecond: Double { self.seconds > 0 ? Double(self.messages) / self.seconds : 0 }
    /// Echoed megabytes (10^6 bytes) per second.
    public var megabytesPerSecond: Double { self.seconds > 0 ? Double(self.bytes) / self.seconds / 1e6 : 0 }
}
