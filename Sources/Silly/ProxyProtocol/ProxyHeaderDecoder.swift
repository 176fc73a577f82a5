import Logging
import NIOCore

/// The first handler of a connection on a PROXY protocol listener: gathers the header, hands it
/// to `onHeader` (which makes the connection and calls the `accept` handler), passes the payload
/// bytes that came with it on to the engine, and removes itself. A bad, missing, late or cut-off
/// header closes the connection instead, with one log line and `onRejected`.
final class ProxyHeaderDecoder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let options: ProxyProtocolOptions
    private let logger: Logger
    private let onHeader: (ProxyHeader) -> Void
    private var received: ByteBuffer?
    /// The header's deadline, in the loop's ``TimerQueue`` (a burst of connects cancels each
    /// in O(log n), not by searching every other connection's).
    private var timer: (queue: TimerQueue, timer: TimerQueue.Timer)?
    /// A header was accepted or refused: whatever arrives now is not this handler's.
    private var decided = false
    /// The connection was refused: what still arrives before it closes is dropped.
    private var refused = false

    init(options: ProxyProtocolOptions, logger: Logger, onHeader: @escaping (ProxyHeader) -> Void) {
        self.options = options
        self.logger = logger
        self.onHeader = onHeader
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.startTimer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.startTimer(context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.decided else {
            if !self.refused { context.fireChannelRead(data) }
            return
        }
        var bytes = self.unwrapInboundIn(data)
        if var received = self.received.take() {
            received.writeBuffer(&bytes)
            bytes = received
        }
        do {
            switch try ProxyHeaderParser.parse(bytes, maxHeaderLength: self.options.maxHeaderLength) {
            case .needMoreBytes:
                self.received = bytes
            case .header(let header, let length):
                self.decided = true
                self.cancelTimer()
                bytes.moveReaderIndex(forwardBy: length)
                self.onHeader(header)
                if bytes.readableBytes > 0 {
                    context.fireChannelRead(self.wrapInboundOut(bytes))
                }
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            }
        } catch {
            self.reject(error, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !self.decided, case ChannelEvent.inputClosed = event {
            self.endedEarly(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.decided { self.endedEarly(context: context) }
        context.fireChannelInactive()
    }

    private func startTimer(context: ChannelHandlerContext) {
        guard self.timer == nil, !self.decided else { return }
        let queue = EventLoopExecutor.for(context.eventLoop).timers
        let timer = queue.schedule(in: TimeAmount(saturating: self.options.headerTimeout)) {
            if !self.decided { self.reject(.timedOut, context: context) }
        }
        self.timer = (queue, timer)
    }

    private func cancelTimer() {
        if let (queue, timer) = self.timer { queue.cancel(timer) }
    }

    /// The stream ended before a complete header: a cut-off header is an error; no byte at all is
    /// a plain TCP health check, closed quietly.
    private func endedEarly(context: ChannelHandlerContext) {
        if (self.received?.readableBytes ?? 0) > 0 {
            self.reject(.truncated, context: context)
        } else {
            self.decided = true
            self.refused = true
            self.cancelTimer()
            context.close(promise: nil)
        }
    }

    private func reject(_ error: ProxyHeaderError, context: ChannelHandlerContext) {
        self.decided = true
        self.refused = true
        self.cancelTimer()
        self.received = nil
        let peer = Endpoint(context.channel.remoteAddress)
        let local = Endpoint(context.channel.localAddress)
        self.logger.warning(
            "connection from \(peer?.description ?? "?") to \(local?.description ?? "?") refused: \(error)",
            metadata: ["connection.peer": "\(peer?.description ?? "?")"]
        )
        self.options.onRejected?(error, peer)
        context.close(promise: nil)
    }
}
