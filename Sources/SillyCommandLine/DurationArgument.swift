import ArgumentParser

/// A duration on the command line: `300s`, `5m`, `500ms`, `1h`, or a number of seconds.
public struct DurationArgument: ExpressibleByArgument, Sendable {
    /// The duration given.
    public let duration: Duration

    /// A default value for an option.
    public init(_ duration: Duration) {
        self.duration = duration
    }

    /// The longest duration taken: 100 years, far past any timeout, and still clear of overflow
    /// once added to the clock.
    public static let longest = Duration.seconds(100 * 365 * 24 * 3600)

    /// Parses `300s`, `5m`, `500ms`, `1h` or a number of seconds; `nil` for anything else,
    /// or for more than ``longest``.
    public init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(argument)
        var scale = 1.0
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            number = argument.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        let seconds = value * scale
        guard seconds <= Double(Self.longest.components.seconds) else { return nil }
        self.duration = .nanoseconds(Int64(seconds * 1e9))
    }

    /// How `--help` shows the default: `5s`, or `500ms`.
    public var defaultValueDescription: String {
        let (seconds, attoseconds) = self.duration.components
        if attoseconds == 0 { return "\(seconds)s" }
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }
}
