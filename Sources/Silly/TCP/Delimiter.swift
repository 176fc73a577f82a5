/// The bytes that end a line for ``TCPConnection/read(until:maxLength:timeout:)``: `"\n"`, `"\r\n"`,
/// or any non-empty byte string.
///
/// Delimiters of up to 8 bytes are stored inline, so a literal such as `"\n"` in a read loop
/// costs no allocation.
public struct Delimiter: Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    // Up to 8 bytes packed little-endian in `inline`; longer ones in `spilled`. A waiting read
    // holds its delimiter for as long as the connection is idle, so it is kept to 17 bytes.
    private let inline: UInt64
    private let spilled: [UInt8]?
    private let inlineCount: UInt8

    /// A delimiter of the given bytes; `nil` if `bytes` is empty.
    public init?(_ bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty else { return nil }
        self.inlineCount = UInt8(truncatingIfNeeded: min(bytes.count, 8))
        if bytes.count <= 8 {
            var packed: UInt64 = 0
            for (index, byte) in bytes.enumerated() { packed |= UInt64(byte) << (8 * index) }
            self.inline = packed
            self.spilled = nil
        } else {
            self.inline = 0
            self.spilled = Array(bytes)
        }
    }

    /// A delimiter of the given bytes; `nil` if there are none. Not generic, unlike the
    /// collection initializer: a caller in another module that makes one per read
    /// (the Lua runtime, from each `conn:read`'s string) would otherwise run the generic code
    /// unspecialised, looking up type metadata on every call.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return nil }
        self.inlineCount = UInt8(truncatingIfNeeded: min(bytes.count, 8))
        if bytes.count <= 8 {
            var packed: UInt64 = 0
            for index in 0..<bytes.count { packed |= UInt64(bytes[index]) << (8 * index) }
            self.inline = packed
            self.spilled = nil
        } else {
            self.inline = 0
            self.spilled = Array(bytes)
        }
    }

    /// A delimiter of the string's UTF-8 bytes. An empty string traps: it delimits nothing.
    public init(stringLiteral value: String) {
        guard let delimiter = Delimiter(value.utf8) else {
            preconditionFailure("a delimiter must not be empty")
        }
        self = delimiter
    }

    /// `"\n"`, the tutorial's line end.
    public static let newline: Delimiter = "\n"
    /// `"\r\n"`, the line end of telnet and most text protocols.
    public static let crlf: Delimiter = "\r\n"

    /// The first byte, what the search scans for.
    var first: UInt8 { self.spilled?.first ?? UInt8(truncatingIfNeeded: self.inline) }
    /// How many bytes the delimiter has, at least one.
    var count: Int { self.spilled?.count ?? Int(self.inlineCount) }

    /// The delimiter's bytes.
    public var bytes: [UInt8] {
        self.withUnsafeBytes { Array($0) }
    }

    /// Calls `body` with the delimiter's bytes, without allocating for inline ones.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let spilled = self.spilled {
            return spilled.withUnsafeBytes(body)
        }
        var packed = self.inline.littleEndian
        return Swift.withUnsafeBytes(of: &packed) { body(UnsafeRawBufferPointer(rebasing: $0.prefix(self.count))) }
    }

    /// The bytes in double quotes as they read (`"\r\n"`, `"it's"`, `"\xFF"`), for a message
    /// or a failed expectation that names the delimiter.
    public var description: String { self.withUnsafeBytes { QuotedText.quoted($0) } }
}
