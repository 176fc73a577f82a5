import Silly

/// What a load run does: how many clients, how many lines each, how big, how many in flight.
public struct LoadConfiguration: Sendable {
    /// The echo server's address.
    public var address = "127.0.0.1:9999"
    /// Concurrent connections.
    public var clients = 100
    /// Lines each client sends; ignored when `duration` is set.
    public var messages = 100
    /// Run for this long instead of a fixed number of lines.
    public var duration: Duration? = nil
    /// Bytes per line, the newline included (the tutorial's `"test message\n"` is 13).
    public var size = 13
    /// Lines each connection keeps in flight.
    public var pipeline = 1
    /// How long a connect may take.
    public var connectTimeout: Duration = .seconds(5)
    /// How long an echo may take before the client counts a timeout and stops.
    public var readTimeout: Duration = .seconds(10)
    /// Event-loop threads driving the clients.
    public var threads = 1
    /// Connect over TLS with these options; `nil`: plain TCP.
    public var tls: TLSOptions? = nil

    /// The tutorial's stress test: 100 clients × 100 messages of 13 bytes, one in flight each.
    public init() {}

    /// How many digits of the message's sequence number end each line, before the newline: all
    /// of the line up to 8 (`--size 2`'s one byte is the sequence number's last digit).
    var sequenceDigits: Int { min(self.size - 1, 8) }

    /// The line client `client` sends as its message `sequence` (counted from 0): `c<client>-`,
    /// a filler pattern, then the last ``sequenceDigits`` digits of `sequence`, zero-padded, and
    /// the newline; cut from the left to `size` bytes, all printable. Every message differs from
    /// its neighbours and from other clients' (the client number is cut at the smallest sizes),
    /// so a duplicated, stale, crossed or unrequested echo is a mismatch.
    func line(for client: Int, sequence: Int = 0) -> [UInt8] {
        let tag = Array("c\(client)-".utf8)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        let prefix = self.size - 1 - self.sequenceDigits
        var bytes = [UInt8]()
        bytes.reserveCapacity(self.size)
        for index in 0..<prefix {
            bytes.append(index < tag.count ? tag[index] : alphabet[(index + client) % alphabet.count])
        }
        bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: self.sequenceDigits))
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeMutableBytes { Self.writeSequence(sequence, into: $0, digits: self.sequenceDigits) }
        return bytes
    }

    /// Writes the last `digits` decimal digits of `sequence` just before the final newline of
    /// `line`: no allocation, a few divisions per message.
    @inline(__always)
    static func writeSequence(_ sequence: Int, into line: UnsafeMutableRawBufferPointer, digits: Int) {
        var rest = sequence
        var index = line.count - 2
        for _ in 0..<digits {
            line[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
            index -= 1
        }
    }
}
