import NIOCore

/// A listening socket made by ``TCP/listen(_:backlog:reusePort:proxyProtocol:tls:options:group:logger:accept:)``.
public final class TCPListener: Sendable {
    private let channel: any Channel
    /// The bound address; its port is the one the kernel chose when the address asked for port 0.
    public let localAddress: Endpoint

    init(channel: any Channel, localAddress: Endpoint) {
        self.channel = channel
        self.localAddress = localAddress
    }

    /// The bound port.
    public var port: Int { self.localAddress.port }

    /// Stops accepting. Handlers already running keep their connections.
    public func close() async {
        try? await self.channel.close()
    }

    /// Stops accepting, without waiting: the callback-level form of ``close()``.
    public func closeNow() {
        self.channel.close(promise: nil)
    }

    /// Completes when the listening socket is closed.
    public var closeFuture: EventLoopFuture<Void> { self.channel.closeFuture }

    /// Returns once the listening socket is closed.
    public func waitUntilClosed() async {
        try? await self.channel.closeFuture.get()
    }
}
