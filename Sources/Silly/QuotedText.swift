/// Bytes quoted for a message as a user reads them: what a server sent, a delimiter.
///
/// In Silly because ``Delimiter`` describes itself with it, and the tools that quote what came
/// (`silly-echo`, `silly-bench`) all build on Silly; `package`, as quoting is no part of a TCP API.
package enum QuotedText {
    /// The start of `bytes` in double quotes, as they are: only what would not read back as sent
    /// is escaped — control characters (`\n`, `\t`, `\u{1B}`: an escape sequence must not act
    /// on the user's terminal), invisible format characters and line separators (`\u{202E}`, a
    /// right-to-left override, would reorder the rest of the log line), bytes that are not UTF-8
    /// (`\xFF`), the double quote and the backslash itself — and `…` follows when there are more
    /// than `limit` bytes.
    ///
    /// Not Swift's `debugDescription`: it escapes apostrophes too (a server's `it's` read
    /// `it\'s`), and shows bytes that are not UTF-8 as U+FFFD, hiding which bytes they were.
    package static func quoted(_ bytes: some Collection<UInt8>, limit: Int = .max) -> String {
        var input = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var text = "\""
        var consumed = 0
        var index = bytes.startIndex
        // Whole characters only: a multi-byte one that straddles `limit` is shown entire.
        parsing: while consumed < limit {
            switch parser.parseScalar(from: &input) {
            case .valid(let encoded):
                consumed += encoded.count
                index = bytes.index(index, offsetBy: encoded.count)
                Self.append(Unicode.UTF8.decode(encoded), to: &text)
            case .error(let length):
                let end = bytes.index(index, offsetBy: length)
                for byte in bytes[index..<end] {
                    text += "\\x" + Self.hex(byte, digits: 2)
                }
                consumed += length
                index = end
            case .emptyInput:
                break parsing
            }
        }
        text += "\""
        return index < bytes.endIndex ? text + "…" : text
    }

    private static func append(_ scalar: Unicode.Scalar, to text: inout String) {
        switch scalar {
        case "\"": text += "\\\""
        case "\\": text += "\\\\"
        case "\n": text += "\\n"
        case "\r": text += "\\r"
        case "\t": text += "\\t"
        case "\0": text += "\\0"
        case _ where Self.escapedCategories.contains(scalar.properties.generalCategory):
            text += "\\u{" + Self.hex(scalar.value, digits: 1) + "}"
        default:
            text.unicodeScalars.append(scalar)
        }
    }

    /// What a terminal would act on or not show: escaped as `\u{…}`.
    private static let escapedCategories: Set<Unicode.GeneralCategory> = [.control, .format, .lineSeparator, .paragraphSeparator]

    /// `value` in uppercase hexadecimal, zero-padded to `digits`.
    private static func hex(_ value: some BinaryInteger, digits: Int) -> String {
        let hex = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - hex.count)) + hex
    }
}
