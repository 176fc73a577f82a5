import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Silly
import Synchronization

/// Serves `GET /metrics` in the Prometheus text format from a registry, on SwiftNIO's HTTP/1
/// server pipeline: a service to run beside a server in a `ServiceGroup`.
///
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
/// let endpoint = PrometheusEndpoint(address: "127.0.0.1:9464", registry: registry)
/// ```
public final class PrometheusEndpoint: Service, Sendable {
    /// Where to listen: any address form `TCP.listen` takes.
    public let address: String
    private let registry: PrometheusCollectorRegistry
    private let beforeScrape: @Sendable () -> Void
    private let logger: Logger
    /// The most connections served at once; more are answered 503 and closed.
    public let maxConnections: Int
    /// How long a metrics connection may go without a whole request, from its start or from the
    /// last answer, before it is closed: a client trickling a request's bytes is closed too.
    public let idleTimeout: Duration

    /// An endpoint for `registry`; `beforeScrape` runs before each scrape, to bring counters
    /// that are published in batches up to date. A scraper needs one connection: beyond
    /// `maxConnections` open at once (clients that connect and sit, say), a new one is answered
    /// `503 Service Unavailable` and closed within 2 s, so the endpoint
    /// cannot take more than `2 × maxConnections` descriptors (``descriptors(maxConnections:)``:
    /// those served, and as many turned away that wait to read their 503; the rest are closed once
    /// it is written), which the server beside it can set aside. `maxConnections` and `idleTimeout`
    /// must be positive (a zero timeout would close every connection before its request).
    public init(
        address: String,
        registry: PrometheusCollectorRegistry,
        maxConnections: Int = 64,
        idleTimeout: Duration = .seconds(30),
        logger: Logger = Logger(label: "silly.metrics"),
        beforeScrape: @escaping @Sendable () -> Void = {}
    ) {
        precondition(maxConnections > 0, "maxConnections must be positive")
        precondition(idleTimeout > .zero, "idleTimeout must be positive")
        self.address = address
        self.registry = registry
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
        self.logger = logger
        self.beforeScrape = beforeScrape
    }

    /// The endpoint could not listen: `reason` says why (a bad or busy address).
    public struct ListenError: Error, CustomStringConvertible {
        public let reason: SillyError
        public var description: String { "metrics endpoint: cannot listen: \(self.reason)" }
    }

    /// The most descriptors an endpoint's connections hold at once: `maxConnections` served,
    /// and as many turned away that wait to read their 503.
    public static func descriptors(maxConnections: Int) -> Int { 2 * maxConnections }

    /// Listens and serves until a graceful shutdown or cancellation.
    /// - Throws: ``ListenError`` for a bad or busy address.
    public func run() async throws {
        let channel: any Channel
        do {
            let socketAddress = try TCP.listenAddress(self.address)
            let registry = self.registry
            let beforeScrape = self.beforeScrape
            let open = OpenConnections(limit: self.maxConnections)
            let logger = self.logger
            let idleTimeout = TimeAmount(saturating: self.idleTimeout)
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        guard open.admit() else {
                            if open.firstRefusal() {
                                logger.warning("Metrics endpoint full: \(open.limit) connections open; turning new ones away (\(Endpoint(channel.remoteAddress)?.description ?? "?") first)")
                            }
                            // At most `limit` turned away linger for their 503 at once; the rest
                            // are closed as soon as it is written.
                            let lingers = open.beginTurningAway()
                            if lingers { channel.closeFuture.whenComplete { _ in open.endTurningAway() } }
                            try channel.pipeline.syncOperations.addHandler(TurnAwayWhenFull(linger: lingers ? TurnAwayWhenFull.linger : nil))
                            return
                        }
                        channel.closeFuture.whenComplete { _ in open.release() }
                        // A scraper that goes quiet, or reads no answers, is closed.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idleTimeout))
                        // A client that sends requests and reads no answer is read no further
                        // while its answers wait (and closed if they pile up: see `respond`).
                        try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(
                            MetricsRequestHandler(registry: registry, requestTimeout: idleTimeout, beforeScrape: beforeScrape)
                        )
                    }
                }
                .bind(to: socketAddress)
                .get()
        } catch {
            throw ListenError(reason: TCP.bindError(error, address: self.address))
        }
        let local = Endpoint(channel.localAddress)
        self.logger.notice("Metrics on http://\(local?.description ?? self.address)/metrics")
        await withTaskCancellationOrGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// How many metrics connections are open, up to a limit; shared by the endpoint's event loops.
private final class OpenConnections: Sendable {
    let limit: Int
    /// Connections served.
    private let served: BoundedCount
    /// Connections turned away, still open while their client reads the 503.
    private let turnedAway: BoundedCount
    /// A refusal was logged since the endpoint was last below its limit.
    private let refusing = Atomic(false)

    init(limit: Int) {
        self.limit = limit
        self.served = BoundedCount(limit: limit)
        self.turnedAway = BoundedCount(limit: limit)
    }

    /// Counts one more connection, if there is room for it.
    func admit() -> Bool { self.served.take() }

    func release() {
        self.served.release()
        self.refusing.store(false, ordering: .relaxed)
    }

    /// Counts one more connection turned away that lingers for its 503, if fewer than `limit` do.
    func beginTurningAway() -> Bool { self.turnedAway.take() }

    func endTurningAway() { self.turnedAway.release() }

    /// Whether this refusal is the first since the endpoint was last below its limit: one log
    /// line per time it fills, not one per client turned away.
    func firstRefusal() -> Bool {
        !self.refusing.exchange(true, ordering: .relaxed)
    }
}

/// A count that stays within `limit`, shared by the endpoint's event loops.
private final class BoundedCount: Sendable {
    let limit: Int
    private let count = Atomic(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Counts one more, if that stays within the limit.
    func take() -> Bool {
        if self.count.add(1, ordering: .relaxed).newValue <= self.limit { return true }
        self.count.subtract(1, ordering: .relaxed)
        return false
    }

    func release() {
        self.count.subtract(1, ordering: .relaxed)
    }
}

/// Answers a connection beyond ``PrometheusEndpoint/maxConnections`` with 503, whatever it
/// asks, then a FIN, and closes it when the client closes, or after ``linger`` whatever it
/// sends: closed at once, a client's unread request would make the socket answer with a reset,
/// which can destroy the 503; held longer, clients turned away would hold descriptors. (Without
/// a linger — as many are lingering as are served — it is closed once the 503 is written.)
private final class TurnAwayWhenFull: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let body = "too many metrics connections\n"
    static let answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\nRetry-After: 1\r\n\r\n\(body)"

    /// How long a client turned away has to read the 503 and close.
    static let linger = TimeAmount.seconds(2)

    private let lingering: TimeAmount?

    init(linger: TimeAmount?) {
        self.lingering = linger
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        guard let linger = self.lingering else {
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: Self.answer))).whenComplete { _ in
                channel.close(promise: nil)
            }
            context.fireChannelActive()
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: Self.answer)), promise: nil)
        context.close(mode: .output, promise: nil)
        let deadline = context.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in deadline.cancel() }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

/// Answers one HTTP/1 request at a time: `GET /metrics` (or `HEAD`), 404 elsewhere, 405 for
/// other methods; closes a connection quiet for ``PrometheusEndpoint/idleTimeout``, one with no
/// whole request within `requestTimeout` of its start or of the last answer (bytes trickled in
/// do not put that off: a connection is a place of the endpoint's few), and one whose unread
/// answers pass ``maxUnsentBytes``; ends one whose request could not be parsed with a FIN after
/// SwiftNIO's 400 answer.
private final class MetricsRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let requestTimeout: TimeAmount
    private let beforeScrape: @Sendable () -> Void
    private var request: HTTPRequestHead?
    private var requestDeadline: Scheduled<Void>?

    init(registry: PrometheusCollectorRegistry, requestTimeout: TimeAmount, beforeScrape: @escaping @Sendable () -> Void) {
        self.registry = registry
        self.requestTimeout = requestTimeout
        self.beforeScrape = beforeScrape
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.armRequestDeadline(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.requestDeadline?.cancel()
        self.requestDeadline = nil
    }

    /// Gives the next request `requestTimeout` from now to be whole.
    private func armRequestDeadline(context: ChannelHandlerContext) {
        self.requestDeadline?.cancel()
        let channel = context.channel
        self.requestDeadline = context.eventLoop.scheduleTask(in: self.requestTimeout) { channel.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Answers queued unread past this close the connection: requests already read when reading
    /// stopped (pipelined, up to a socket read's worth) are not answered into an unbounded queue.
    static let maxUnsentBytes = 4 << 20

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request: `HTTPServerProtocolErrorHandler` has sent 400 with
        // `Connection: close`, and leaves the closing to us. Closed at once, with the rest of
        // the client's bytes unread, the socket would answer with a reset, which can destroy
        // the 400 before the client reads it: so a FIN after the 400, and the client's own
        // close (or the idle timeout) ends the connection. What it sends meanwhile is dropped
        // (the decoder, failed, decodes no more). Errors after this one change nothing.
        context.close(mode: .output, promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.request = head
        case .body:
            break
        case .end:
            guard let head = self.request.take() else { return }
            self.respond(to: head, context: context)
            self.armRequestDeadline(context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let unsent = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        guard unsent <= Self.maxUnsentBytes else {
            context.close(promise: nil)
            return
        }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        var body = ByteBuffer()
        let status: HTTPResponseStatus
        var headers = HTTPHeaders()
        if path != "/metrics" {
            status = .notFound
            body.writeString("Not found: try /metrics\n")
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        } else if head.method != .GET && head.method != .HEAD {
            status = .methodNotAllowed
            headers.add(name: "Allow", value: "GET, HEAD")
        } else {
            status = .ok
            self.beforeScrape()
            body.writeBytes(self.registry.emitToBuffer())
            headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
        }
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        if !keepAlive {
            // As after a 400: a FIN once the answer is sent (SwiftNIO's output close waits for
            // it), not a close that bytes the client sent after its request would turn into a
            // reset; the client's close, or the request deadline, ends the connection.
            context.close(mode: .output, promise: nil)
        }
    }
}
