import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The tutorial's `silly.net.tcp`: listen for connections, and connect to servers.
public enum TCP {
    /// Listens on `address` and runs `accept` for each connection, in a task of its own on the
    /// connection's event loop. When `accept` returns or throws, the connection is closed (and
    /// what was thrown is logged); handlers never block one another.
    ///
    /// - Parameters:
    ///   - address: `"127.0.0.1:9999"`, `"0.0.0.0:8080"`, `":8080"` (all IPv4 interfaces, as `"0.0.0.0:8080"`; `"[::]:8080"` for IPv6 too), `"[::1]:9999"`,
    ///     `"localhost:9999"`; port 0 picks a free port (see ``TCPListener/port``).
    ///   - backlog: the kernel's queue of connections not yet accepted.
    ///   - reusePort: let other sockets (other processes) listen on the same address too
    ///     (`SO_REUSEPORT`): the kernel spreads incoming connections among them.
    ///   - proxyProtocol: expect every connection to begin with a PROXY protocol header (v1 or v2,
    ///     from HAProxy's `send-proxy` or nginx's `proxy_protocol on`): `accept` runs once it has
    ///     arrived, and ``TCPConnection/remoteAddress`` is the original client's. `nil`: no header.
    ///   - tls: serve TLS (``TLSOptions/server(certificateFile:privateKeyFile:)``); `nil`: plain TCP.
    ///   - options: limits for each accepted connection.
    ///   - group: the event loops that serve the connections; all cores by default.
    ///   - logger: where handler failures are logged.
    /// - Throws: ``SillyError/invalidAddress(_:reason:)``, ``SillyError/unresolvable(_:)``,
    ///   ``SillyError/addressInUse(_:)`` or ``SillyError/permissionDenied(_:)``, each naming
    ///   `address`; or ``SillyError/system(errno:)``.
    public static func listen(
        _ address: String,
        backlog: Int = 4096,
        reusePort: Bool = false,
        proxyProtocol: ProxyProtocolOptions? = nil,
        tls: TLSOptions? = nil,
        options: ConnectionOptions = ConnectionOptions(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "silly.tcp"),
        accept: @escaping @Sendable (TCPConnection) async throws -> Void
    ) async throws(SillyError) -> TCPListener {
        let handler = ConnectionHandler(accept: accept, logger: logger)
        let bound = Self.bind(
            address,
            backlog: backlog,
            reusePort: reusePort,
            proxyProtocol: proxyProtocol,
            tls: tls,
            options: options,
            group: group,
            logger: logger
        ) { connection in
            let executor = EventLoopExecutor.for(connection.eventLoop)
            // The closure's frame is allocated with the task and lives as long as the
            // connection: it holds only the connection and the shared handler.
            Task(executorPreference: executor) {
                do {
                    try await handler.accept(connection)
                } catch {
                    handler.log(error, from: connection)
                }
                await connection.close()
            }
        }
        return try await Self.result(of: bound)
    }

    /// Connects to `address` (same forms as `listen`; no host means 127.0.0.1), over TLS if `tls`
    /// is given (``TLSOptions/client(trustedCertificateFile:verifyCertificate:serverName:)``).
    ///
    /// Called from a task on an event loop of `group` (an `accept` handler, a forked task), the
    /// connection lives on that same loop, so its reads and writes need no thread hop; otherwise
    /// on the next loop of `group`.
    /// - Throws: ``SillyError/connectionRefused(_:)``, ``SillyError/unresolvable(_:)``,
    ///   ``SillyError/connectTimeout(_:)``, ``SillyError/invalidAddress(_:reason:)``,
    ///   ``SillyError/system(errno:)``, or ``SillyError/cancelled`` as soon as the task is
    ///   cancelled. A failed TLS handshake fails the first read or write with ``SillyError/tls(_:)``.
    public static func connect(
        _ address: String,
        timeout: Duration = .seconds(10),
        tls: TLSOptions? = nil,
        options: ConnectionOptions = ConnectionOptions(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(SillyError) -> TCPConnection {
        let loop = Self.currentLoop(in: group) ?? group.next()
        let attempt = ConnectAttempt()
        let connecting = Self.connect(address, timeout: timeout, tls: tls, options: options, on: loop, attempt: attempt)
        return try await Self.connection(of: connecting, attempt: attempt)
    }

    /// Awaits a connect, or throws ``SillyError/cancelled`` as soon as the task is cancelled: the
    /// attempt's sockets are then closed, and so is a connection that completes after all.
    private static func connection(
        of connecting: EventLoopFuture<TCPConnection>,
        attempt: ConnectAttempt
    ) async throws(SillyError) -> TCPConnection {
        let outcome = connecting.eventLoop.makePromise(of: TCPConnection.self)
        connecting.whenComplete { result in
            if attempt.complete() {
                outcome.completeWith(result)
            } else if case .success(let connection) = result {
                connection.closeOnLoop()
            }
        }
        do {
            return try await withTaskCancellationHandler {
                try await outcome.futureResult.get()
            } onCancel: {
                if attempt.abandon() { outcome.fail(SillyError.cancelled) }
            }
        } catch {
            throw ConnectionEngine.describe(error)
        }
    }

    /// The event loop the caller runs on, if it is one of `group`'s.
    private static func currentLoop(in group: any EventLoopGroup) -> (any EventLoop)? {
        guard let current = MultiThreadedEventLoopGroup.currentEventLoop else { return nil }
        return group.makeIterator().contains { $0 === current } ? current : nil
    }

    // MARK: Callback level

    /// Listens on `address` and calls `accept` on each connection's event loop once its channel
    /// is active (on a PROXY protocol listener, once the header has arrived; never for a
    /// connection the listener's close cut off before then): the callback-level front end's
    /// `listen`, for code that drives its connections from the loop without a task each (a
    /// script runtime).
    ///
    /// With one event loop as `group`, every connection lives on that loop (the listening socket
    /// itself is on the process's acceptor thread, ``acceptor``).
    /// The future fails with the errors ``listen(_:backlog:reusePort:proxyProtocol:tls:options:group:logger:accept:)`` throws.
    public static func bind(
        _ address: String,
        backlog: Int = 4096,
        reusePort: Bool = false,
        proxyProtocol: ProxyProtocolOptions? = nil,
        tls: TLSOptions? = nil,
        options: ConnectionOptions = ConnectionOptions(),
        group: any EventLoopGroup,
        logger: Logger = Logger(label: "silly.tcp"),
        accept: @escaping @Sendable (TCPConnection) -> Void
    ) -> EventLoopFuture<TCPListener> {
        let bindAddress: SocketAddress
        do {
            bindAddress = try HostAndPort(parsing: address).resolve(defaultHost: "0.0.0.0", original: address)
        } catch {
            return Self.acceptor.next().makeFailedFuture(error)
        }
        let limits = ConnectionLimits(options, tls: tls != nil)
        let bootstrap = ServerBootstrap(group: Self.acceptor, childGroup: group)
            .serverChannelOption(.backlog, value: Int32(clamping: backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: reusePort ? 1 : 0)
            // Drain the accept queue on every wakeup: a burst of connects must not overflow it.
            .serverChannelOption(.maxMessagesPerRead, value: 1024)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptFailurePause(address: address, logger: logger))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: options.waterMark)
            .childChannelOption(.recvAllocator, value: Self.receiveAllocator)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let engine = try Self.attachEngine(to: channel, limits: limits)
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(tls.serverHandler(), position: .first)
                        try channel.pipeline.syncOperations.addHandler(CloseAfterPendingWrites(patience: limits.closeLinger), position: .first)
                    }
                    guard let proxyProtocol else {
                        // Once the channel is active: if it never is (the listener closed
                        // before SwiftNIO registered it), no handler starts.
                        engine.startWhenActive(accept)
                        return
                    }
                    let decoder = ProxyHeaderDecoder(options: proxyProtocol, logger: logger) { header in
                        engine.setProxyHeader(header)
                        accept(TCPConnection(engine: engine))
                    }
                    // First of all: the header comes before any TLS record.
                    try channel.pipeline.syncOperations.addHandler(decoder, position: .first)
                }
            }
        return bootstrap.bind(to: bindAddress).flatMapErrorThrowing { error in
            throw Self.bindError(error, address: address)
        }.map { channel in
            TCPListener(channel: channel, localAddress: Endpoint(channel.localAddress) ?? Endpoint(ip: "?", port: 0))
        }
    }

    /// Connects to `address` from `eventLoop`, where the connection then lives: the
    /// callback-level front end's `connect`. `localAddress` (`"IP:port"`, port 0 for any) binds the
    /// connecting socket first. The future fails with the errors
    /// ``connect(_:timeout:tls:options:group:)`` throws.
    public static func connect(
        _ address: String,
        timeout: Duration = .seconds(10),
        localAddress: String? = nil,
        tls: TLSOptions? = nil,
        options: ConnectionOptions = ConnectionOptions(),
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<TCPConnection> {
        Self.connect(address, timeout: timeout, localAddress: localAddress, tls: tls, options: options, on: eventLoop, attempt: nil)
    }

    /// The callback-level `connect`, whose sockets `attempt` (if any) can close before it ends.
    /// `resolver` replaces the system's for a host name (tests: a name with two addresses).
    static func connect(
        _ address: String,
        timeout: Duration,
        localAddress: String? = nil,
        tls: TLSOptions?,
        options: ConnectionOptions,
        on eventLoop: any EventLoop,
        attempt: ConnectAttempt?,
        resolver: (any Resolver & Sendable)? = nil
    ) -> EventLoopFuture<TCPConnection> {
        let target: HostAndPort
        do {
            target = try HostAndPort(parsing: address)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let host = target.host ?? "127.0.0.1"
        // Kept from the initializer: a peer that resets the connection the moment it is made
        // closes the channel, and empties its pipeline, before the connect's future runs on.
        // One engine per channel: a name with several addresses gets an attempt for each
        // (SwiftNIO's happy eyeballs), and the one that connects need not be the last begun.
        let attached = NIOLoopBoundBox.makeEmptyBox(valueType: [ObjectIdentifier: ConnectionEngine].self, eventLoop: eventLoop)
        var bootstrap = ClientBootstrap(group: eventLoop)
            .resolver(resolver)
            .connectTimeout(TimeAmount(saturating: timeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.writeBufferWaterMark, value: options.waterMark)
            .channelOption(.recvAllocator, value: Self.receiveAllocator)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let attempt, !attempt.register(channel) { throw SillyError.cancelled }
                    let limits = ConnectionLimits(options, tls: tls != nil)
                    var engines = attached.value ?? [:]
                    engines[ObjectIdentifier(channel)] = try Self.attachEngine(to: channel, limits: limits)
                    attached.value = engines
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(tls.clientHandler(host: host), position: .first)
                        try channel.pipeline.syncOperations.addHandler(CloseAfterPendingWrites(patience: limits.closeLinger), position: .first)
                    }
                }
            }
        do {
            if let localAddress {
                let local = try HostAndPort(parsing: localAddress)
                bootstrap = bootstrap.bind(to: try local.resolve(defaultHost: "0.0.0.0", original: localAddress))
            }
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let connected: EventLoopFuture<any Channel>
        if let literal = try? SocketAddress(ipAddress: host, port: target.port) {
            connected = bootstrap.connect(to: literal)
        } else {
            connected = bootstrap.connect(host: host, port: target.port)
        }
        return connected.map { channel in
            // Connected (so the initializer ran): if the peer has reset it already, the
            // connection's reads say so.
            let engine = attached.value![ObjectIdentifier(channel)]!
            attached.value = nil  // the other attempts' engines go with their channels
            engine.connected()
            return TCPConnection(engine: engine)
        }.flatMapErrorThrowing { error in
            throw Self.connectError(error, address: address, localAddress: localAddress)
        }
    }

    // MARK: Internals

    /// How long the listener waits before accepting again after `accept` failed.
    static let acceptBackoff = TimeAmount.milliseconds(200)

    /// The loop every listener of the process accepts on: a thread of its own, which hands each
    /// connection to its loop in the listener's group. Out of descriptors (EMFILE), `accept`
    /// fails at once while the listening socket stays readable, and SwiftNIO (2.101) tries again
    /// at once (its `AcceptBackoffHandler` cannot stop that: the channel keeps its read pending
    /// after a failed first accept). This loop pauses instead, stalling no connection.
    static let acceptor: any EventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Awaits a future of this file, whose failures are all ``SillyError``s.
    private static func result<Value: Sendable>(of future: EventLoopFuture<Value>) async throws(SillyError) -> Value {
        do {
            return try await future.get()
        } catch {
            throw ConnectionEngine.describe(error)
        }
    }

    /// Receive buffers start at the minimum (an idle connection keeps one in NIO's pool) and grow
    /// quickly for bulk traffic.
    private static let receiveAllocator = ReceiveSizes(minimum: 64, initial: 64, maximum: 65536)

    @discardableResult
    private static func attachEngine(to channel: any Channel, limits: ConnectionLimits) throws -> ConnectionEngine {
        let engine = ConnectionEngine(channel: channel, executor: EventLoopExecutor.for(channel.eventLoop), limits: limits)
        try channel.pipeline.syncOperations.addHandler(engine)
        return engine
    }

    /// The typed error of a failed bind of `address`: for `listen`, and the package's other
    /// servers (the metrics endpoint).
    package static func bindError(_ error: any Error, address: String) -> SillyError {
        guard let error = error as? IOError else { return ConnectionEngine.describe(error) }
        switch error.errnoCode {
        case EADDRINUSE: return .addressInUse(address)
        case EACCES: return .permissionDenied(address)
        case EADDRNOTAVAIL: return .invalidAddress(address, reason: "no local interface has this address")
        default: return .system(errno: error.errnoCode)
        }
    }

    private static func connectError(_ error: any Error, address: String, localAddress: String?) -> SillyError {
        if let localAddress, let error = error as? IOError, [EACCES, EADDRINUSE, EADDRNOTAVAIL].contains(error.errnoCode) {
            // The local address could not be bound: named as `listen` names it.
            return Self.bindError(error, address: localAddress)
        }
        switch error {
        case let error as SillyError:
            return error
        case let error as NIOConnectionError:
            // Several addresses tried (IPv6 and IPv4 for a name): a refusal says the most.
            let errors = error.connectionErrors.map(\.error)
            if let refused = errors.first(where: { ($0 as? IOError)?.errnoCode == ECONNREFUSED }) {
                return Self.connectError(refused, address: address, localAddress: localAddress)
            }
            if let first = errors.first {
                return Self.connectError(first, address: address, localAddress: localAddress)
            }
            return .unresolvable(address)
        case ChannelError.connectTimeout:
            return .connectTimeout(address)
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            return .connectionRefused(address)
        default:
            return ConnectionEngine.describe(error)
        }
    }
}

/// What every connection of one listener shares: the user's handler and the logger.
private final class ConnectionHandler: Sendable {
    let accept: @Sendable (TCPConnection) async throws -> Void
    let logger: Logger

    init(accept: @escaping @Sendable (TCPConnection) async throws -> Void, logger: Logger) {
        self.accept = accept
        self.logger = logger
    }

    /// Logs what a handler threw; a read loop ending because the peer left is no failure.
    func log(_ error: any Error, from connection: TCPConnection) {
        let routine = error as? SillyError == .endOfStream || error as? SillyError == .activeClosed
        self.logger.log(
            level: routine ? .debug : .warning,
            "connection handler threw: \(error)",
            metadata: ["connection.peer": "\(connection.remoteAddress.map(String.init(describing:)) ?? "?")"]
        )
    }
}

extension ConnectionOptions {
    /// The water marks as SwiftNIO takes them: `1 <= low <= high` (it traps otherwise).
    var waterMark: ChannelOptions.Types.WriteBufferWaterMark {
        let low = max(1, self.writeWatermarks.lowerBound)
        return .init(low: low, high: max(low, self.writeWatermarks.upperBound))
    }
}

/// On the acceptor loop: after a failed accept (out of descriptors, say), pauses that loop for
/// ``TCP/acceptBackoff`` before the next attempt, and logs the failure: the first at once, then
/// at most one line per 10 seconds with the count, so a long shortage cannot flood the log.
private final class AcceptFailurePause: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel

    private let address: String
    private let logger: Logger
    private var lastLogged: NIODeadline?
    private var unlogged = 0

    init(address: String, logger: Logger) {
        self.address = address
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Only a shortage is worth a pause; a connection aborted before it was accepted is not.
        guard let code = (error as? IOError)?.errnoCode, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(code) else {
            context.fireErrorCaught(error)
            return
        }
        defer {
            // Blocking is what this loop is for: it only accepts. Connections live elsewhere.
            usleep(UInt32(TCP.acceptBackoff.nanoseconds / 1000))
        }
        self.unlogged += 1
        let now = NIODeadline.now()
        if let last = self.lastLogged, now - last < .seconds(10) { return }
        self.lastLogged = now
        // The address bound (an ephemeral port's number), not the one asked for.
        let listener = Endpoint(context.channel.localAddress)?.description ?? self.address
        self.logger.warning(
            "accept failed on \(listener): \(ConnectionEngine.describe(error)) (\(self.unlogged) time(s)); pausing \(TCP.acceptBackoff.nanoseconds / 1_000_000) ms between attempts",
            metadata: ["listener": "\(listener)"]
        )
        self.unlogged = 0
    }
}
