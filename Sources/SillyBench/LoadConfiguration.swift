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

    /// The line client `client` sends: the tutorial's `test message`, or for other sizes a
    /// pattern that starts with the client's number, so crossed or corrupted echoes show.
    func line(for client: Int) -> [UInt8] {
        if self.size == 13 { return Array("test message\n".utf8) }
        let tag = Array("client \(client) ".utf8)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var bytes = [UInt8]()
        bytes.reserveCapacity(self.size)
        for index in 0..<(self.size - 1) {
            bytes.append(index < tag.count ? tag[index] : alphabet[(index + client) % alphabet.count])
        }
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}
