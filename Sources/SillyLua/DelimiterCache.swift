import Silly

/// The last delimiter `conn:read` was given, so that a read loop's `"\n"` becomes a
/// ``Delimiter`` once, not on every line.
struct DelimiterCache {
    private var packed: UInt64 = 0
    private var count = 0
    private var cached: Delimiter?

    /// The delimiter of `bytes`; `nil` if they are empty.
    mutating func delimiter(for bytes: UnsafeRawBufferPointer) -> Delimiter? {
        guard bytes.count <= 8 else { return Delimiter(bytes) }
        var packed: UInt64 = 0
        for index in 0..<bytes.count {
            packed |= UInt64(bytes[index]) << (8 * index)
        }
        if let cached = self.cached, packed == self.packed, bytes.count == self.count {
            return cached
        }
        self.cached = Delimiter(bytes)
        self.packed = packed
        self.count = bytes.count
        return self.cached
    }
}
