#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One of this host's IPv4 TCP sockets, as `/proc/net/tcp` lists it (what `ss -t4an` shows).
public struct SocketEntry: Sendable, Equatable {
    public enum State: String, Sendable {
        case established = "01", synSent = "02", timeWait = "06", listen = "0A"
        case other
    }
    public var localPort: Int
    public var remotePort: Int
    public var state: State
    /// Bytes received and not yet read by the socket's owner (for a listener: connections
    /// waiting in its accept queue).
    public var receiveQueue: Int
    public var inode: String

    /// Every IPv4 TCP socket of this host. Read in full: Foundation's `String(contentsOfFile:)`
    /// stops at the first page of a /proc file, which holds only about 25 sockets.
    public static func all() -> [SocketEntry] {
        Self.parse(readWholeFile("/proc/net/tcp"))
    }

    static func parse(_ table: String) -> [SocketEntry] {
        table.split(separator: "\n").dropFirst().compactMap { line in
            // sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt uid timeout inode
            let fields = line.split(separator: " ")
            guard fields.count > 9,
                let localPort = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                let remotePort = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                let receiveQueue = fields[4].split(separator: ":").last.flatMap({ Int($0, radix: 16) })
            else { return nil }
            return SocketEntry(
                localPort: localPort, remotePort: remotePort,
                state: State(rawValue: String(fields[3])) ?? .other,
                receiveQueue: receiveQueue, inode: String(fields[9])
            )
        }
    }
}

/// A file's whole text, read until its end (for /proc files, which report a size of 0).
public func readWholeFile(_ path: String) -> String {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { return "" }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        bytes += chunk[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
