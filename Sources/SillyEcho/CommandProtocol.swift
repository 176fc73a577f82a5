import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The tutorial's fourth exercise: a tiny line protocol with `help`, `time` and `quit`.
public enum CommandProtocol {
    /// What the server sends when a client connects.
    public static let banner = "Welcome to Silly Echo Server!\nType 'help' for commands\n"
    /// The prompt before each line.
    public static let prompt = "> "
    /// The reply to `help`.
    public static let help = "Command list:\n  help - Show this help\n  time - Show server time\n  quit - Disconnect\n"
    /// The reply to `quit`, before the server closes the connection.
    public static let goodbye = "Goodbye!\n"

    /// The answer to one line.
    public struct Reply: Equatable, Sendable {
        /// The bytes to send.
        public var text: ByteBuffer
        /// Close the connection after sending `text`.
        public var quits: Bool
    }

    /// The answer to `line` (as read, delimiter included). Surrounding whitespace, and telnet's
    /// `\r\n`, are trimmed for matching; anything else is echoed byte for byte after `Echo: `.
    public static func reply(to line: ByteBuffer, now: () -> String = Self.serverTime) -> Reply {
        switch Self.command(in: line) {
        case "help":
            return Reply(text: ByteBuffer(string: Self.help), quits: false)
        case "time":
            return Reply(text: ByteBuffer(string: now() + "\n"), quits: false)
        case "quit":
            return Reply(text: ByteBuffer(string: Self.goodbye), quits: true)
        default:
            var echo = ByteBuffer(string: "Echo: ")
            echo.writeImmutableBuffer(line)
            if line.readableBytesView.last != UInt8(ascii: "\n") {
                echo.writeString("\n")  // the client's last line had no end of line
            }
            return Reply(text: echo, quits: false)
        }
    }

    /// The line with surrounding ASCII whitespace (and `\r\n`) trimmed, if it is a command word.
    static func command(in line: ByteBuffer) -> String? {
        let bytes = line.readableBytesView
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || (0x09...0x0D).contains($0) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }),
            let last = bytes.lastIndex(where: { !isSpace($0) }),
            last - first < 8
        else { return nil }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }

    /// The server's local time as Lua's `os.date()` prints it (C's `%c`).
    public static func serverTime() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var text = [CChar](repeating: 0, count: 64)
        let length = strftime(&text, text.count, "%c", &parts)
        return String(decoding: text[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
