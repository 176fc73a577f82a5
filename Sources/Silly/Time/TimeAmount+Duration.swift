import NIOCore

extension TimeAmount {
    /// `duration` as a `TimeAmount`, a negative one as zero (already due).
    ///
    /// SwiftNIO's own `TimeAmount(_: Duration)` saturates any overflow to the largest positive
    /// amount, whatever the sign: a timeout of minus 300 years would then never fire.
    package init(saturating duration: Duration) {
        self = duration <= .zero ? .zero : TimeAmount(duration)
    }
}
