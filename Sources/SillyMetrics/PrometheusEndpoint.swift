import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Silly

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

    /// An endpoint for `registry`; `beforeScrape` runs before each scrape, to bring counters
    /// that are published in batches up to date.
    public init(
        address: String,
        registry: PrometheusCollectorRegistry,
        logger: Logger = Logger(label: "silly.metrics"),
        beforeScrape: @escaping @Sendable () -> Void = {}
    ) {
        self.address = address
        self.registry = registry
        self.logger = logger
        self.beforeScrape = beforeScrape
    }

    /// The endpoint could not listen: `reason` says why (a bad or busy address).
    public struct ListenError: Error, CustomStringConvertible {
        public let reason: SillyError
        public var description: String { "metrics endpoint: cannot listen: \(self.reason)" }
    }

    /// How long a metrics connection may sit with nothing read or written before it is closed.
    static let idleTimeout = TimeAmount.seconds(30)

    /// Listens and serves until a graceful shutdown or cancellation.
    /// - Throws: ``ListenError`` for a bad or busy address.
    public func run() async throws {
        let channel: any Channel
        do {
            let socketAddress = try TCP.listenAddress(self.address)
            let registry = self.registry
            let beforeScrape = self.beforeScrape
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // A scraper that goes quiet (or never finishes its request) is closed.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: Self.idleTimeout))
                        // A client that sends requests and reads no answer is read no further
                        // while its answers wait (and closed if they pile up: see `respond`).
                        try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(
                            MetricsRequestHandler(registry: registry, beforeScrape: beforeScrape)
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

/// Answers one HTTP/1 request at a time: `GET /metrics` (or `HEAD`), 404 elsewhere, 405 for
/// other methods; closes a connection quiet for ``PrometheusEndpoint/idleTimeout``, one whose
/// request could not be parsed (after SwiftNIO's 400 answer), and one whose unread answers pass
/// ``maxUnsentBytes``.
private final class MetricsRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let beforeScrape: @Sendable () -> Void
    private var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, beforeScrape: @escaping @Sendable () -> Void) {
        self.registry = registry
        self.beforeScrape = beforeScrape
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
        // `Connection: close`, and leaves the closing to us.
        context.close(promise: nil)
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
        let sent = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            sent.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
