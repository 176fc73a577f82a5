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

    /// Parses `300s`, `5m`, `500ms`, `1h` or a number of seconds (digits and a decimal point:
    /// no sign, exponent or hexadecimal); `nil` for anything else, for more than ``longest``,
    /// or for a positive value under a nanosecond (it would read as zero, "off" for a timeout).
    public init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(argument)
        var scale = 1.0
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            number = argument.dropLast(suffix.count)
            scale = factor
            break
        }
        guard number.allSatisfy({ ("0"..."9").contains($0) || $0 == "." }), let value = Double(number) else { return nil }
        let seconds = value * scale
        guard seconds <= Double(Self.longest.components.seconds) else { return nil }
        let nanoseconds = Int64(seconds * 1e9)
        guard nanoseconds > 0 || value == 0 else { return nil }
        self.duration = .nanoseconds(nanoseconds)
    }

    /// How `--help` shows the default: `5s`, or `500ms`.
    public var defaultValueDescription: String {
        let (seconds, attoseconds) = self.duration.components
        if attoseconds == 0 { return "\(seconds)s" }
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }
}
