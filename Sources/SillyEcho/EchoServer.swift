import CoreMetrics
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Silly
import Synchronization

/// The tutorial's echo server with its extension exercises, as a service: a connection counter,
/// an idle timeout, per-connection and server statistics, the command protocol, raw mode,
/// limits, and a graceful shutdown.
///
/// Run it in a `ServiceGroup` (as `silly-echo` does) or call ``run()`` directly; a graceful
/// shutdown stops accepting, lets open connections finish what they have received within
/// `shutdownGrace`, closes the rest and logs the totals.
public final class EchoServer: Service, Sendable {
    /// What the server was told.
    public let configuration: EchoConfiguration
    /// The server's totals, updated as connections are admitted, answered and closed.
    public let statistics = ServerStatistics()
    let logger: Logger
    private let metrics: EchoMetrics
    private let registry = ConnectionRegistry()
    private let shuttingDown = Atomic<Bool>(false)
    private let listening = Mutex<ListeningState>(.waiting([]))

    private enum ListeningState {
        case waiting([CheckedContinuation<Endpoint?, Never>])
        case bound(Endpoint)
        case ended
    }

    /// A server that logs to `logger` and publishes its statistics through `metricsFactory`
    /// (swift-metrics' bootstrapped factory by default); nothing listens until ``run()``.
    public init(configuration: EchoConfiguration, logger: Logger, metricsFactory: (any MetricsFactory)? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = EchoMetrics(factory: metricsFactory ?? MetricsSystem.factory)
    }

    /// The name of the connection-lifetime histogram, for choosing its buckets.
    public static let connectionDurationMetric = EchoMetrics.Name.lifetimes

    /// Hands the statistics' growth since the last call to the metrics backend; the server does
    /// so every second by itself, and a scrape endpoint calls it first to be exact.
    public func publishMetrics() {
        self.metrics.publish(self.statistics.snapshot)
    }

    /// Listens, serves until a graceful shutdown (or cancellation), then drains and returns.
    /// - Throws: the `SillyError` of a bad or busy address.
    public func run() async throws {
        let listener: TCPListener
        // Its own loops when a thread count is given; they end with the server.
        let ownLoops = self.configuration.threads.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
        defer { ownLoops?.shutdownGracefully { _ in } }
        do {
            listener = try await TCP.listen(
                self.configuration.address,
                backlog: self.configuration.backlog,
                reusePort: self.configuration.reusePort,
                proxyProtocol: self.configuration.proxyProtocol ? self.proxyProtocolOptions : nil,
                tls: self.configuration.tls,
                options: self.configuration.connectionOptions,
                group: ownLoops ?? MultiThreadedEventLoopGroup.singleton,
                logger: self.logger
            ) { [self] connection in
                await self.serve(connection)
            }
        } catch {
            self.announce(nil)
            throw error
        }
        self.logger.notice("Listening on \(listener.localAddress) (\(self.configuration.mode) mode)")
        self.announce(listener.localAddress)

        let reporter = self.configuration.statsInterval.map { interval in
            Task { [self] in
                while (try? await Task.sleep(for: interval)) != nil {
                    self.logger.info("Totals: \(self.statistics.snapshot)")
                }
            }
        }
        let publisher = Task { [self] in
            while (try? await Task.sleep(for: .seconds(1))) != nil {
                self.publishMetrics()
            }
        }
        await withTaskCancellationOrGracefulShutdownHandler {
            await listener.waitUntilClosed()
        } onCancelOrGracefulShutdown: {
            Task { await listener.close() }
        }
        reporter?.cancel()
        await self.drainConnections()
        publisher.cancel()
        self.publishMetrics()
        self.logger.notice("Shutdown complete. Totals: \(self.statistics.snapshot)")
    }

    /// The address the server listens on, once it does; `nil` if listening failed.
    public func waitUntilListening() async -> Endpoint? {
        await withCheckedContinuation { continuation in
            let ready: Endpoint?? = self.listening.withLock { state in
                switch state {
                case .waiting(var waiters):
                    waiters.append(continuation)
                    state = .waiting(waiters)
                    return .none
                case .bound(let endpoint): return .some(endpoint)
                case .ended: return .some(nil)
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func announce(_ endpoint: Endpoint?) {
        let waiters = self.listening.withLock { state in
            guard case .waiting(let waiters) = state else { return [CheckedContinuation<Endpoint?, Never>]() }
            state = endpoint.map { .bound($0) } ?? .ended
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: endpoint) }
    }

    // MARK: Shutdown

    /// Lets every open connection finish what it has received, then closes what is left.
    /// Cancelled rather than shut down gracefully, it closes them without waiting.
    private func drainConnections() async {
        // Before the registry is read: a handler that registers later sees the flag (`serve`).
        self.shuttingDown.store(true, ordering: .sequentiallyConsistent)
        let open = self.registry.all
        if !open.isEmpty {
            let connections = open.count == 1 ? "1 connection has" : "\(open.count) connections have"
            self.logger.notice("Shutting down: \(connections) \(self.configuration.shutdownGrace.logDescription) to finish")
        }
        for connection in open {
            await connection.stopReading()
        }
        await self.waitForHandlers(for: self.configuration.shutdownGrace)
        // Out of time: what is left is dropped, not sent (a close would wait for the client).
        for connection in self.registry.all {
            await connection.abort()
        }
        // Each handler logs its close; give them a moment to do so, cancelled or not (a second
        // signal cancels the drain): in a task of its own, which the cancellation does not reach.
        await Task { await self.waitForHandlers(for: .seconds(1)) }.value
    }

    /// Waits until every handler has ended, for at most `patience`, or until cancelled.
    private func waitForHandlers(for patience: Duration) async {
        let deadline = ContinuousClock.now + patience
        while !self.registry.isEmpty, ContinuousClock.now < deadline {
            // Cancelled, the sleep throws at once: stop waiting rather than spin.
            guard (try? await Task.sleep(for: .milliseconds(10))) != nil else { return }
        }
    }

    // MARK: One connection

    /// The accept handler: admission, the counter, the mode's session, statistics.
    private func serve(_ connection: TCPConnection) async {
        if connection.proxyHeader?.command == .local {
            await self.serveHealthCheck(connection)
            return
        }
        guard let open = self.statistics.admit(limit: self.configuration.maxConnections) else {
            await self.reject(connection)
            return
        }
        let opened = ContinuousClock.now
        self.registry.insert(connection)
        self.logAccept(connection, open: open)
        var session = EchoSession(connection: connection, server: self)
        if self.shuttingDown.load(ordering: .sequentiallyConsistent) {
            // Accepted as the listener closed, perhaps after the drain read the registry: it
            // gets what the others get, the bytes already received and no more.
            await connection.stopReading()
        }
        let reason = await session.run()
        // Whether the shutdown ended it, decided now: the close may take a while yet.
        let duringShutdown = self.shuttingDown.load(ordering: .relaxed)
        await connection.close()
        // Until what it was sent has left (or the close gave up on the client): a shutdown
        // waits for the registry to empty, and the process must not end before then.
        await connection.waitUntilClosed()
        self.metrics.recordLifetime(ContinuousClock.now - opened)
        self.logClose(connection, reason: reason, duringShutdown: duringShutdown, statistics: session.statistics)
        // Last: the shutdown waits for the registry to empty before it logs the totals, which
        // must include this connection's close.
        self.registry.remove(connection)
    }

    /// A load balancer's own connection (PROXY `LOCAL`: HAProxy's health checks): served like any
    /// other, but logged at debug level and counted apart, so checks every few seconds do not
    /// fill the log or pass for clients (HAProxy ends them with a reset). They count toward
    /// `--max-connections` (a full server fails its checks), or `LOCAL` headers would get round it.
    @inline(never)
    private func serveHealthCheck(_ connection: TCPConnection) async {
        let limit = self.configuration.maxConnections
        guard self.statistics.admitHealthCheck(limit: limit) else {
            self.logger.debug("Reject health check from \(connection.peerName): server is full")
            try? await connection.write(Self.fullNotice(limit: limit))
            return
        }
        self.registry.insert(connection)
        self.logger.debug("Health check from \(connection.peerName)")
        var session = EchoSession(connection: connection, server: self, counted: false)
        _ = await session.run()
        await connection.close()
        await connection.waitUntilClosed()
        self.statistics.releaseHealthCheck()
        self.registry.remove(connection)
    }

    /// Header errors are logged by the core and counted here.
    private var proxyProtocolOptions: ProxyProtocolOptions {
        var options = ProxyProtocolOptions { [statistics] _, _ in statistics.count(.proxyHeader) }
        options.headerTimeout = self.configuration.proxyHeaderTimeout
        return options
    }

    // Out of line: their string building would otherwise enlarge the frame that every open
    // connection keeps.

    @inline(never)
    private func reject(_ connection: TCPConnection) async {
        let limit = self.configuration.maxConnections
        self.logger.warning("Reject connection \(connection.peerName): server is full (\(limit) connections)")
        try? await connection.write(Self.fullNotice(limit: limit))
    }

    /// The one line a client turned away gets.
    private static func fullNotice(limit: Int) -> String {
        "Server is full (\(limit) connections), try again later\n"
    }

    @inline(never)
    private func logAccept(_ connection: TCPConnection, open: Int) {
        self.logger.info("Accept connection \(connection.peerName), connections: \(open)")
    }

    @inline(never)
    private func logClose(_ connection: TCPConnection, reason: CloseReason, duringShutdown: Bool, statistics stats: ConnectionStatistics) {
        let remaining = self.statistics.release()
        // At shutdown, reads end as if the client had closed (`stopReading`), and connections
        // still open when the grace period ends are closed by the server: both are the shutdown.
        let shutdown = (reason == .clientClosed || reason == .closedByServer) && duringShutdown
        self.logger.info(
            "Close connection \(connection.peerName) (\(shutdown ? .serverShutdown : reason)): received \(stats.bytesReceived) bytes, sent \(stats.bytesSent) bytes, messages \(stats.messages); connections: \(remaining)"
        )
    }
}

extension TCPConnection {
    /// The peer's address for the log; a client that reset the connection before the server
    /// could ask the kernel for it (`getpeername`) has none left to give.
    var peerName: String { self.remoteAddress?.description ?? "unknown peer (reset at once)" }
}
