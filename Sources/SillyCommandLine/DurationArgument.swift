import ArgumentParser

/// A duration on the command line: `300s`, `5m`, `500ms`, `1h`, or a number of seconds.
public struct DurationArgument: ExpressibleByArgument, Sendable {
    /// The duration given.
    public let duration: Duration

    /// A default value for an option.
    public init(_ duration: Duration) {
        self.duration = duration
    }

    /// Parses `300s`, `5m`, `500ms`, `1h` or a number of seconds; `nil` for anything else.
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
        self.duration = .nanoseconds(Int64(value * scale * 1e9))
    }

    /// How `--help` shows the default: `5s`, or `500ms`.
    public var defaultValueDescription: String {
        let (seconds, attoseconds) = self.duration.components
        if attoseconds == 0 { return "\(seconds)s" }
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }
}
