/// The bytes that end a line for ``TCPConnection/read(until:maxLength:timeout:)``: `"\n"`, `"\r\n"`,
/// or any non-empty byte string.
///
/// A string literal makes one without allocating when it is a single byte, the common case.
public struct Delimiter: Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The delimiter's bytes, never empty.
    public let bytes: [UInt8]
    @usableFromInline let first: UInt8

    /// A delimiter of the given bytes; `nil` if `bytes` is empty.
    public init?(_ bytes: some Collection<UInt8>) {
        guard let first = bytes.first else { return nil }
        self.bytes = Array(bytes)
        self.first = first
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

    public var description: String { String(decoding: self.bytes, as: UTF8.self).debugDescription }
}
