import Foundation
import Histogram

/// How a ``LoadResult`` is printed: a summary like redis-benchmark's and wrk's, or JSON.
public enum LoadReport {
    static let percentiles: [(label: String, value: Double)] = [
        ("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9),
    ]

    /// How many distinct reasons for failing the summary lists under its error counts.
    static let failuresShown = 5

    /// The human summary.
    public static func text(_ result: LoadResult) -> String {
        let c = result.configuration
        let run = c.duration.map { String(format: "for %g s", $0 / .seconds(1)) } ?? "\(c.messages) \(c.messages == 1 ? "message" : "messages") each"
        var lines = [
            "silly-bench: \(c.clients) \(c.clients == 1 ? "client" : "clients"), \(run), \(c.size) bytes per message, pipeline \(c.pipeline), against \(c.address)",
            String(format: "  messages     %d verified in %.3f s", result.messages, result.seconds),
            String(format: "  throughput   %.0f msg/s, %.2f MB/s", result.messagesPerSecond, result.megabytesPerSecond),
        ]
        if result.interrupted {
            lines.append("  interrupted  stopped early: no more lines sent, the echoes in flight awaited and checked")
        }
        lines.append("  latency      " + Self.summary(result.latency, or: "n/a: no echo completed"))
        lines.append("  connect      " + Self.summary(result.connect, or: "n/a: no connect succeeded"))
        let e = result.errors
        lines.append(
            "  errors       connect \(e.connect), reset \(e.reset), timeout \(e.timeout), closed \(e.closed), mismatch \(e.mismatch), tls \(e.tls), other \(e.other)"
        )
        let failures = result.failuresByCount
        for failure in failures.prefix(Self.failuresShown) {
            lines.append("    \(failure.clients) × \(failure.reason)")
        }
        if failures.count > Self.failuresShown {
            lines.append("    (and \(failures.count - Self.failuresShown) more reasons)")
        }
        return lines.joined(separator: "\n")
    }

    /// The percentiles in µs; `unmeasured` when there is nothing to take them of (an empty
    /// histogram reads 0 everywhere, which would look like a very fast server).
    private static func summary(_ histogram: Histogram<UInt64>, or unmeasured: String) -> String {
        guard histogram.totalCount > 0 else { return unmeasured }
        return (["min \(histogram.min)"] + Self.percentiles.map { "\($0.label) \(histogram.valueAtPercentile($0.value))" }
            + ["max \(histogram.max)"]).joined(separator: "  ") + " (µs)"
    }

    /// The figures as JSON, for scripts. Percentiles of nothing measured (no echo completed,
    /// no connect succeeded) are `null`, as the text's `n/a`, not zeros.
    public static func json(_ result: LoadResult) throws -> String {
        struct Percentiles: Encodable {
            var min: UInt64, p50: UInt64, p90: UInt64, p99: UInt64, p99_9: UInt64, max: UInt64
            /// `nil` for an empty histogram.
            init?(_ h: Histogram<UInt64>) {
                guard h.totalCount > 0 else { return nil }
                self.min = h.min
                self.p50 = h.valueAtPercentile(50)
                self.p90 = h.valueAtPercentile(90)
                self.p99 = h.valueAtPercentile(99)
                self.p99_9 = h.valueAtPercentile(99.9)
                self.max = h.max
            }
        }
        /// Percentiles, or an explicit `null` (a synthesized encoding would leave the key out).
        struct OrNull: Encodable {
            var percentiles: Percentiles?
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                if let percentiles = self.percentiles { try container.encode(percentiles) } else { try container.encodeNil() }
            }
        }
        struct Document: Encodable {
            var address: String
            var clients: Int
            var messagesPerClient: Int?
            var durationSeconds: Double?
            var size: Int
            var pipeline: Int
            var messages: Int
            var bytes: Int
            var elapsedSeconds: Double
            var messagesPerSecond: Double
            var megabytesPerSecond: Double
            var latencyMicroseconds: OrNull
            var connectMicroseconds: OrNull
            var errors: ErrorCounts
            var errorsTotal: Int
            var failures: [String: Int]
            var interrupted: Bool
        }
        let c = result.configuration
        let document = Document(
            address: c.address, clients: c.clients,
            messagesPerClient: c.duration == nil ? c.messages : nil,
            durationSeconds: c.duration.map { $0 / .seconds(1) },
            size: c.size, pipeline: c.pipeline, messages: result.messages, bytes: result.bytes,
            elapsedSeconds: result.seconds, messagesPerSecond: result.messagesPerSecond,
            megabytesPerSecond: result.megabytesPerSecond,
            latencyMicroseconds: OrNull(percentiles: Percentiles(result.latency)),
            connectMicroseconds: OrNull(percentiles: Percentiles(result.connect)),
            errors: result.errors, errorsTotal: result.errors.total, failures: result.failures,
            interrupted: result.interrupted
        )
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(document), as: UTF8.self)
    }
}
