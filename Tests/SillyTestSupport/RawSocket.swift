#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A plain TCP socket on loopback, for what the framework's own API would not do: hold a port
/// without listening, listen without accepting, reset on close.
public final class RawSocket: Sendable {
    public let descriptor: Int32

    public init() {
        self.descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    }

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Takes the next connection from this listening socket's queue, waiting for one; `nil` if
    /// that failed.
    public func accept() -> RawSocket? {
        let connection = Glibc.accept(self.descriptor, nil, nil)
        return connection >= 0 ? RawSocket(descriptor: connection) : nil
    }

    deinit {
        close(self.descriptor)
    }

    /// Binds to 127.0.0.1 on a port the kernel picks, and returns that port.
    public func bindLoopback() -> Int? {
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(self.descriptor, $0, length) == 0 && getsockname(self.descriptor, $0, &length) == 0
            }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }

    /// Binds to 127.0.0.1:`port`; `false` if it is taken.
    public func bind(port: Int) -> Bool {
        var address = Self.loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(self.descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// A loopback port free now, below the kernel's ephemeral range (32768 and up): for a
    /// program that must be given its port. A port another test's listener on port 0 (or any
    /// connect) gets is always in that range, so it cannot take this one before the program does;
    /// and no two calls in a test run give the same port.
    public static func freePortBelowEphemeralRange() -> Int {
        while true {
            let port = Int.random(in: 20_000..<32_000)
            guard RawSocket().bind(port: port) else { continue }  // closed again at once
            if Self.handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
    }

    /// The ports ``freePortBelowEphemeralRange()`` gave.
    private static let handedOut = Mutex<Set<Int>>([])

    /// Connects to 127.0.0.1:`port`; `false` if that failed.
    public func connect(port: Int) -> Bool {
        var address = Self.loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(self.descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// Sends what the socket takes now, without waiting; returns how many bytes that was.
    public func sendAvailable(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
    }

    /// Receives exactly `count` bytes, waiting at most `timeout` seconds for each chunk; fewer
    /// if the peer closed or the wait ran out.
    public func receive(count: Int, timeout seconds: Int = Int(patience.components.seconds)) -> [UInt8] {
        var limit = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(self.descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var bytes = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let n = bytes.withUnsafeMutableBytes { recv(self.descriptor, $0.baseAddress! + received, count - received, 0) }
            guard n > 0 else { break }
            received += n
        }
        return Array(bytes[0..<received])
    }

    /// Sets SO_RCVBUF (before `connect`, so the window the peer sees is that small).
    public func setReceiveBuffer(_ bytes: Int32) {
        var value = bytes
        setsockopt(self.descriptor, SOL_SOCKET, SO_RCVBUF, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sets SO_LINGER 0: closing then sends RST, dropping whatever is unsent.
    public func resetOnClose() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(self.descriptor, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
