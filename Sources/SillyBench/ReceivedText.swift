import NIOCore

/// What a server sent, quoted for a report as a user reads it.
enum ReceivedText {
    /// The start of `bytes` in double quotes, as it came: only what would not read back as sent
    /// is escaped — control characters (`\n`, `\t`, `\u{1B}`: an escape sequence must not act
    /// on the user's terminal), bytes that are not UTF-8 (`\xFF`), the double quote and the
    /// backslash itself — and `…` follows when more than `limit` bytes came.
    ///
    /// Not Swift's `debugDescription`: it escapes apostrophes too (a server's `it's` read
    /// `it\'s`), and shows bytes that are not UTF-8 as U+FFFD, hiding which bytes they were.
    static func quoted(_ bytes: ByteBuffer, limit: Int = 60) -> String {
        let view = bytes.readableBytesView
        var input = view.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var text = "\""
        var consumed = 0
        // Whole characters only: a multi-byte one that straddles `limit` is shown entire.
        parsing: while consumed < limit {
            switch parser.parseScalar(from: &input) {
            case .valid(let encoded):
                consumed += encoded.count
                Self.append(Unicode.UTF8.decode(encoded), to: &text)
            case .error(let length):
                for byte in view.dropFirst(consumed).prefix(length) {
                    text += "\\x" + Self.hex(byte, digits: 2)
                }
                consumed += length
            case .emptyInput:
                break parsing
            }
        }
        text += "\""
        return consumed < view.count ? text + "…" : text
    }

    private static func append(_ scalar: Unicode.Scalar, to text: inout String) {
        switch scalar {
        case "\"": text += "\\\""
        case "\\": text += "\\\\"
        case "\n": text += "\\n"
        case "\r": text += "\\r"
        case "\t": text += "\\t"
        case "\0": text += "\\0"
        case _ where scalar.properties.generalCategory == .control:
            text += "\\u{" + Self.hex(scalar.value, digits: 1) + "}"
        default:
            text.unicodeScalars.append(scalar)
        }
    }

    /// `value` in uppercase hexadecimal, zero-padded to `digits`.
    private static func hex(_ value: some BinaryInteger, digits: Int) -> String {
        let hex = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - hex.count)) + hex
    }
}
