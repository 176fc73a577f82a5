import NIOCore
import NIOSSL
import NIOTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Who is waiting for a read to complete. Each front end resumes its own kind of code here:
/// the async API a task's continuation, callback-level front ends (a load generator, a script
/// runtime) a handler object called on the loop.
enum ReadWaiter {
    case task(UnsafeContinuation<Result<ByteBuffer, SillyError>, Never>)
    case handler(any TCPReadHandler)

    func resume(with result: Result<ByteBuffer, SillyError>) {
        switch self {
        case .task(let continuation): continuation.resume(returning: result)
        case .handler(let handler): handler.readCompleted(result)
        }
    }
}

/// The limits every connection of a listener (or one connect) shares: one object, not a copy in
/// each idle connection.
final class ConnectionLimits: Sendable {
    let maxLineLength: Int
    let receiveLimit: Int?
    let sendQueueLimit: Int
    /// Unflushed bytes that are flushed at once rather than at the end of the group: writes
    /// must reach the channel, whose queue the limits watch (a TLS handler holds them until then).
    let flushThreshold: Int
    /// The largest write that cannot take a writable connection's queue over `sendQueueLimit`
    /// (a writable one holds at most the high water mark, plus under the flush threshold held
    /// by a TLS handler): larger ones check the queue.
    let largestUncheckedWrite: Int
    /// The connection is TLS: its bytes flow once the handshake is done.
    let tls: Bool
    /// A TLS handler holds unflushed writes outside the channel's count of unsent bytes (a plain
    /// channel counts a write as soon as it is queued).
    var unflushedOutsideChannel: Bool { self.tls }
    let closeLinger: TimeAmount

    init(_ options: ConnectionOptions, tls: Bool) {
        self.maxLineLength = options.maxLineLength
        self.receiveLimit = options.receiveLimit
        self.sendQueueLimit = options.sendQueueLimit
        let high = options.waterMark.high
        self.flushThreshold = high  // at least 1: SwiftNIO's water marks require it
        // The channel's high water mark, and as much again unflushed (written as two steps: no overflow).
        let limit = options.sendQueueLimit
        let afterChannel = limit - min(high, limit)
        self.largestUncheckedWrite = afterChannel - min(high, afterChannel)
        self.tls = tls
        self.closeLinger = TimeAmount(saturating: options.closeLinger)
    }
}

/// A PROXY protocol header, kept out of line so that connections without one stay small.
final class ProxyHeaderBox: Sendable {
    let header: ProxyHeader
    init(_ header: ProxyHeader) { self.header = header }
}

/// The per-connection engine: every byte of a connection passes through here, whichever front end
/// drives it — the async API of ``TCPConnection``, or its callback-level API (`tryRead`,
/// `writeOnLoop`) for code that runs on the loop without a task per connection.
///
/// The per-message path, top to bottom:
/// 1. `channelRead` appends the socket's bytes to the ``ReceiveBuffer`` (no copy when it was empty).
/// 2. If a reader waits and its request can now be met, it is resumed with a slice of the buffer;
///    its task runs with the next group of resumed tasks (``EventLoopExecutor``: once 16 wait,
///    or SwiftNIO has handled the current batch of socket events). A read the buffer already
///    satisfies (``read(_:)``) returns without waiting at all.
/// 3. `write` queues in the channel and asks the loop's ``EventLoopExecutor`` to flush this
///    connection once the group of tasks it runs in has run: one `write(2)` per group.
///
/// Invariants: everything here runs on the channel's event loop. At most one read waits at a time
/// (`pendingRead`), and it is resumed exactly once: with data, an error or a timeout.
/// After the peer closed, buffered bytes are still served before the error that ends reading.
final class ConnectionEngine: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct PendingRead {
        var request: ReadRequest
        var waiter: ReadWaiter
        /// When the read times out; `.distantFuture` without a timeout (not an optional: 8 bytes, not 16).
        var deadline: NIODeadline
    }

    let executor: EventLoopExecutor
    /// The channel, for its addresses and close future: they outlive the pipeline's `context`.
    let channel: any Channel
    /// Shared by every connection of a listener.
    private let limits: ConnectionLimits
    /// What the load balancer said, on a PROXY protocol listener (boxed: most connections have
    /// none). Set on the loop before the connection's handler starts, never after.
    private(set) var proxy: ProxyHeaderBox?
    /// The peer's address, kept for the connection's lifetime: SwiftNIO forgets it once the
    /// channel closes, which can be before a handler has looked. Set on the loop before the
    /// connection is handed out (at accept, or when a connect completes), never after.
    private(set) var remoteSocketAddress: SocketAddress?
    // Loop-confined state, never accessed overlappingly: the dynamic exclusivity checks Swift
    // would put on every access of these per-message fields are turned off.
    @exclusivity(unchecked) private var context: ChannelHandlerContext?
    @exclusivity(unchecked) private var received = ReceiveBuffer()
    @exclusivity(unchecked) private var pendingRead: PendingRead?
    /// One timer per connection serves every read's timeout: a read only records its deadline,
    /// and the timer, when it fires early, re-arms for the waiting read's deadline. So a read
    /// loop with a timeout costs a clock read per line, not a scheduled task.
    /// It is one of the loop's ``TimerQueue`` (cancelling it at close costs O(log n), not a search
    /// through every connection's timer); when it fires is kept here too, so a read checks it
    /// without touching the timer.
    private var readTimer: TimerQueue.Timer?
    /// When the read timer fires; `.distantFuture` while it is not armed.
    private var readTimerDeadline = NIODeadline.distantFuture
    private var writabilityWaiters: [WritabilityWait] = []
    /// An accepted connection's handler, until the channel is active (``startWhenActive(_:)``).
    private var startOnActive: ((TCPConnection) -> Void)?

    /// A task waiting for the send queue to drain, and its timeout's timer, if it has one.
    private final class WritabilityWait {
        let continuation: UnsafeContinuation<Result<Void, SillyError>, Never>
        var timeout: TimerQueue.Timer?
        init(_ continuation: UnsafeContinuation<Result<Void, SillyError>, Never>) { self.continuation = continuation }
    }
    // (Declared after the 8-byte fields, and the flags after it: so they pack into one word.)
    /// Why the stream ended, when that was not a clean EOF.
    private var failure: SillyError?
    /// The peer will send nothing more (EOF, reset, or the channel closed).
    private var inputEnded = false
    /// The channel is closed; nothing more can be written.
    private var channelClosed = false
    /// `close()` was called here.
    private var closedLocally = false
    /// `shutdownOutput()` was called here: nothing more can be written.
    private var outputShutDown = false
    /// Queued writes are being handed to the kernel: a close now is the kernel refusing them.
    private var isFlushing = false
    private var isWritable = true
    private var needsFlush = false
    private var readHeldBack = false
    private var readingStopped = false
    /// TLS, its handshake not done: what is written waits in the TLS handler until it is.
    private var handshakePending: Bool
    /// Bytes were flushed while `handshakePending`: they wait in the TLS handler.
    private var sentBeforeHandshake = false
    /// `close()` was called while bytes waited for the handshake: it goes on once it is done.
    private var closeAwaitsHandshake = false
    /// `shutdownOutput()` was called before the handshake was done: the FIN goes once it is.
    private var finAwaitsHandshake = false
    /// Bytes written since the last flush (saturating; packed beside the flags).
    private var unflushedBytes: UInt32 = 0
    private(set) var receiveLimit: Int

    init(channel: any Channel, executor: EventLoopExecutor, limits: ConnectionLimits) {
        self.channel = channel
        self.executor = executor
        self.limits = limits
        self.receiveLimit = limits.receiveLimit ?? .max
        self.handshakePending = limits.tls
        self.remoteSocketAddress = channel.remoteAddress  // an accepted channel has it already
    }

    /// Records the peer's address of a connect that completed.
    func connected() {
        self.remoteSocketAddress = self.channel.remoteAddress
    }

    /// Runs `handler` with the connection once its channel is active. SwiftNIO registers an
    /// accepted channel only after its initializer has run, and closes it unregistered if the
    /// listener closed meanwhile: a handler started from the initializer would then see its
    /// connection end at once; started here, it never starts for one.
    func startWhenActive(_ handler: @escaping (TCPConnection) -> Void) {
        self.startOnActive = handler
    }

    /// Records the PROXY protocol header the connection began with.
    func setProxyHeader(_ header: ProxyHeader) {
        assert(self.proxy == nil, "a connection has one PROXY header")
        self.proxy = ProxyHeaderBox(header)
    }

    var maxLineLength: Int { self.limits.maxLineLength }

    // MARK: State the front ends read

    /// Bytes received and not yet read.
    var unreadBytes: Int { self.received.count }

    /// Bytes written and not yet handed to the kernel.
    var unsentBytes: Int {
        guard let channel = self.context?.channel else { return 0 }
        return channel.unsentBytes
    }

    /// Whether the connection can still be written to: open, not closed here, its output not shut down.
    var isAlive: Bool { !self.closedLocally && !self.channelClosed && !self.outputShutDown }

    /// Whether the peer will send nothing more: it ended its stream, reset it, or the connection
    /// closed. Bytes it sent before may still be buffered, unread.
    var peerEnded: Bool { self.inputEnded }

    /// Why a write cannot be queued, if it cannot.
    private var writeError: SillyError? {
        if self.closedLocally || self.outputShutDown { return .activeClosed }
        if self.channelClosed { return self.failure ?? .endOfStream }
        return nil
    }

    // MARK: Reads

    /// Starts a read: its result if the buffer (or the stream's end) decides it now, `nil` if the
    /// caller must ``wait(for:timeout:waiter:)``.
    func read(_ request: ReadRequest) -> Result<ByteBuffer, SillyError>? {
        if self.pendingRead != nil { return .failure(.readInProgress) }
        self.received.startRequest()
        return self.attempt(request)
    }

    /// Parks `waiter` until `request` can be met, fails, or times out. Only after ``read(_:)``
    /// returned `nil` on the same turn of the loop.
    func wait(for request: ReadRequest, timeout: TimeAmount?, waiter: ReadWaiter) {
        var pending = PendingRead(request: request, waiter: waiter, deadline: .distantFuture)
        if let timeout {
            let deadline = NIODeadline.now() + timeout
            pending.deadline = deadline
            self.armReadTimer(at: deadline)
        }
        self.pendingRead = pending
        self.resumeReadingIfHeldBack()
    }

    /// Makes sure the read timer fires no later than `deadline`.
    private func armReadTimer(at deadline: NIODeadline) {
        if self.readTimerDeadline <= deadline { return }  // it fires first, then re-arms
        self.cancelReadTimer()
        self.readTimer = self.executor.timers.schedule(at: deadline) { self.readTimerFired() }
        self.readTimerDeadline = deadline
    }

    private func cancelReadTimer() {
        if let timer = self.readTimer { self.executor.timers.cancel(timer) }
        self.readTimer = nil
        self.readTimerDeadline = .distantFuture
    }

    private func readTimerFired() {
        self.readTimer = nil
        self.readTimerDeadline = .distantFuture
        guard let pending = self.pendingRead, pending.deadline != .distantFuture else { return }
        let deadline = pending.deadline
        if deadline <= .now() {
            self.pendingRead = nil
            pending.waiter.resume(with: .failure(.timedOut))
        } else {
            self.armReadTimer(at: deadline)
        }
    }

    /// ``read(_:)`` then, if needed, ``wait(for:timeout:waiter:)`` (or, for a `cancelled` task,
    /// ``SillyError/cancelled``): the entry for a caller that had to hop onto the loop first.
    func readOrWait(_ request: ReadRequest, timeout: TimeAmount?, waiter: ReadWaiter, cancelled: Bool) {
        if let result = self.read(request) {
            waiter.resume(with: result)
        } else if cancelled {
            waiter.resume(with: .failure(.cancelled))
        } else {
            self.wait(for: request, timeout: timeout, waiter: waiter)
        }
    }

    /// What `request` gets now: data, the error that ends the stream, or `nil` to wait.
    private func attempt(_ request: ReadRequest) -> Result<ByteBuffer, SillyError>? {
        if self.closedLocally { return .failure(.activeClosed) }
        switch self.received.take(request, maxLineLength: self.maxLineLength) {
        case .ready(let data):
            self.resumeReadingIfHeldBack()
            return .success(data)
        case .lineTooLong(let limit):
            return .failure(.lineTooLong(limit: limit))
        case .needMore:
            guard self.inputEnded || self.readingStopped else { return nil }
            if let failure = self.failure { return .failure(failure) }
            // A clean end: the last line needs no delimiter to be read.
            if case .line = request, self.received.count > 0 {
                return .success(self.received.takeAll())
            }
            return .failure(.endOfStream)
        }
    }

    /// Resumes the waiting reader if what changed (data, EOF, close) decides its request.
    private func serveWaitingRead() {
        guard let pending = self.pendingRead, let result = self.attempt(pending.request) else { return }
        self.pendingRead = nil
        pending.waiter.resume(with: result)
    }

    // MARK: Writes

    /// Queues `data`; it is flushed when the current group of tasks (or batch of callback-level
    /// work) ends. Never waits.
    func write(_ data: ByteBuffer) throws(SillyError) {
        if let error = self.writeError { throw error }
        // (Without a context the channel has closed, and `writeError` said so.)
        guard let context = self.context else { throw .endOfStream }
        let size = data.readableBytes
        if !self.isWritable || size > self.limits.largestUncheckedWrite,
            self.unsentBytes + (self.limits.unflushedOutsideChannel ? Int(self.unflushedBytes) : 0) + size
                > self.limits.sendQueueLimit
        {
            throw .sendQueueFull(limit: self.limits.sendQueueLimit)
        }
        context.write(self.wrapOutboundOut(data), promise: nil)
        let (total, overflow) = self.unflushedBytes.addingReportingOverflow(UInt32(clamping: size))
        self.unflushedBytes = overflow ? .max : total
        if !self.needsFlush {
            self.needsFlush = true
            self.executor.scheduleFlush(self)
        }
        if Int(self.unflushedBytes) >= self.limits.flushThreshold {
            self.flush()
        }
    }

    /// Hands queued writes to the kernel, if any are queued.
    func flush() {
        guard self.needsFlush, let context = self.context else { return }
        self.needsFlush = false
        self.unflushedBytes = 0
        if self.handshakePending { self.sentBeforeHandshake = true }
        let wasFlushing = self.isFlushing  // a flush can write, and flush, again
        self.isFlushing = true
        context.flush()
        self.isFlushing = wasFlushing
    }

    /// What ``waitUntilWritable(_:)`` would answer without waiting; `nil` if it must wait.
    var writableNow: Result<Void, SillyError>? {
        if let error = self.writeError { return .failure(error) }
        return self.isWritable ? .success(()) : nil
    }

    /// Resumes `waiter` once the channel is writable again (at once if it is: SwiftNIO's water
    /// marks, unwritable from passing the high one until below the low one),
    /// or with ``SillyError/timedOut`` if they are not within `timeout`, or at once with
    /// ``SillyError/cancelled`` if it would have to wait for a `cancelled` task.
    func waitUntilWritable(_ waiter: UnsafeContinuation<Result<Void, SillyError>, Never>, timeout: TimeAmount?, cancelled: Bool) {
        // Flushing may drain the queue and fire `channelWritabilityChanged` right here, so the
        // flush comes before the check, or that wakeup would be lost.
        self.flush()
        if let error = self.writeError {
            waiter.resume(returning: .failure(error))
        } else if self.isWritable {
            waiter.resume(returning: .success(()))
        } else if cancelled {
            waiter.resume(returning: .failure(.cancelled))
        } else {
            let wait = WritabilityWait(waiter)
            if let timeout {
                wait.timeout = self.executor.timers.schedule(in: timeout) {
                    guard let index = self.writabilityWaiters.firstIndex(where: { $0 === wait }) else { return }
                    self.writabilityWaiters.remove(at: index)
                    wait.continuation.resume(returning: .failure(.timedOut))
                }
            }
            self.writabilityWaiters.append(wait)
        }
    }

    private func resumeWritabilityWaiters(with result: Result<Void, SillyError>) {
        let waiters = self.writabilityWaiters
        self.writabilityWaiters = []
        for wait in waiters {
            if let timer = wait.timeout { self.executor.timers.cancel(timer) }
            wait.continuation.resume(returning: result)
        }
    }

    // MARK: Receive limit

    /// Changes the receive limit (`nil`: none) and resumes reading if the new limit allows it.
    func setReceiveLimit(_ limit: Int?) {
        self.receiveLimit = limit ?? .max
        self.resumeReadingIfHeldBack()
    }

    /// A waiting reader always gets data: its own bound (count, or line length) caps the buffer.
    /// Closed here, the socket is read (and what comes dropped) until it closes.
    private var mayRead: Bool {
        self.closedLocally
            || (!self.readingStopped && (self.received.count < self.receiveLimit || self.pendingRead != nil))
    }

    /// Ends the input as if the peer had closed: buffered bytes are still read, then
    /// ``SillyError/endOfStream``; the socket is not read any more.
    func stopReading() {
        self.readingStopped = true
        self.serveWaitingRead()
    }

    private func resumeReadingIfHeldBack() {
        guard self.readHeldBack, self.mayRead, let context = self.context else { return }
        self.readHeldBack = false
        context.read()
    }

    // MARK: Close

    /// Sends what was written, then shuts the write side down; reads go on.
    func shutdownOutput() {
        guard self.writeError == nil else { return }
        self.flush()
        self.outputShutDown = true
        // Nothing more can be written: a task waiting to write more hears so now, as a new
        // wait would, rather than once the peer has read what is queued.
        self.resumeWritabilityWaiters(with: .failure(.activeClosed))
        // A flush that failed closed the channel (and removed the context).
        guard let context = self.context, !self.channelClosed else { return }
        if self.handshakePending {
            // NIOSSLHandler would pass an output close made before the handshake straight to the
            // socket: the peer would see its handshake cut, and what was written lost.
            self.finAwaitsHandshake = true
            return
        }
        self.sendFIN(context)
    }

    /// Shuts the write side down once what was written is sent (``shutdownOutput()``).
    private func sendFIN(_ context: ChannelHandlerContext) {
        if self.inputEnded {
            // Both sides are done. (SwiftNIO would make this a full close at once, dropping
            // bytes not yet sent: close once they are.)
            self.closeWhenSent(context)
        } else {
            context.close(mode: .output, promise: nil)
        }
    }

    /// Closes the connection from this side. A waiting read fails with ``SillyError/activeClosed``.
    /// Bytes already written are sent first (giving up once the peer takes less than 64 KiB of
    /// them in `options.closeLinger`: ``SendStallDeadline``); while the peer may still be
    /// sending, the write side is then shut down (a FIN) and what arrives is read and dropped
    /// until the peer ends too, for at most ``peerEndPatience`` once nothing is left to send
    /// (up to `closeLinger` more while the peer is still sending: ``SendStallDeadline``).
    /// Returns a future that completes when what was written has been handed to the
    /// kernel (or could not be): the channel may stay open a moment longer, for the peer's end.
    /// (After ``shutdownOutput()`` with bytes still queued, and for a TLS close that waits for
    /// its handshake, the future is the channel's close: it completes later, never earlier.)
    @discardableResult
    func close() -> EventLoopFuture<Void> {
        guard !self.closedLocally else { return self.channel.closeFuture }
        self.closedLocally = true
        // Nobody reads any more: what arrives until the socket closes is dropped (`channelRead`),
        // and the socket is read again if the receive limit or `stopReading()` had paused it.
        self.received = ReceiveBuffer()
        self.resumeReadingIfHeldBack()
        self.serveWaitingRead()
        self.resumeWritabilityWaiters(with: .failure(.activeClosed))
        guard !self.channelClosed, let context = self.context else { return self.channel.closeFuture }
        self.flush()
        if self.handshakePending && (self.sentBeforeHandshake || self.finAwaitsHandshake) {
            // Closed before the TLS handshake is done (a client turned away at once: "Server is
            // full"): what was written waits in the TLS handler, unseen by `unsentBytes`, and
            // NIOSSLHandler would pass an output close made before the handshake began straight
            // to the socket, the client seeing its handshake cut. So the close waits for the
            // handshake (or fails with it), for at most `closeLinger`; then the rest of the close
            // has its own deadline.
            self.closeAwaitsHandshake = true
            let deadline = context.eventLoop.assumeIsolated().scheduleTask(in: self.limits.closeLinger) {
                if self.closeAwaitsHandshake { context.close(promise: nil) }
            }
            self.channel.closeFuture.assumeIsolated().whenComplete { _ in deadline.cancel() }
            return self.channel.closeFuture
        }
        return self.closeAfterSending(context)
    }

    /// Closes the connection at once, as ``close()`` does but without waiting for anything:
    /// bytes not yet handed to the kernel are dropped, and the peer may see a reset.
    func abort() {
        self.close()
        guard let context = self.context, !self.channelClosed else { return }
        self.closeAwaitsHandshake = false
        guard self.limits.tls else {
            context.close(promise: nil)
            return
        }
        // A close from here would go through the TLS handler, which waits for the peer's
        // close_notify; the handler below it closes the socket itself.
        let closed = context.eventLoop.makePromise(of: Void.self)
        closed.futureResult.assumeIsolated().whenFailure { _ in context.close(promise: nil) }
        context.triggerUserOutboundEvent(AbortConnection(), promise: closed)
    }

    /// The rest of ``close()``: once the bytes written are on their way, the write side is shut
    /// down, or the channel closed.
    @discardableResult
    private func closeAfterSending(_ context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let unsent = self.unsentBytes
        if self.inputEnded && unsent == 0 {
            context.close(promise: nil)
            return self.channel.closeFuture
        }
        // One deadline for all of what follows, put off while the peer keeps taking bytes; a
        // peer that only has to send its FIN gets less.
        SendStallDeadline.start(on: self.channel, patience: self.limits.closeLinger, afterSent: Self.peerEndPatience) {
            context.close(promise: nil)
        }
        if self.inputEnded {
            return self.closeWhenSent(context)
        }
        if self.outputShutDown {
            // By `shutdownOutput()`: the FIN is on its way, and the peer's closes the channel.
            return unsent == 0 ? context.eventLoop.makeSucceededVoidFuture() : self.channel.closeFuture
        }
        // Closed with the peer's bytes unread, the socket would answer them with a reset, which
        // can destroy what was sent to the peer before it reads it ("Server is full",
        // "Goodbye!"). So: a FIN after the last byte, then read until the peer's FIN, which makes
        // SwiftNIO close the channel (or, if it comes while bytes still drain, the end of the
        // output's close does).
        self.outputShutDown = true
        guard self.limits.unflushedOutsideChannel && unsent > 0 else {
            return self.closeOutput(context)
        }
        // TLS: NIOSSLHandler, its output closed, makes a close_notify from the peer a full close
        // that drops the bytes still queued. So the FIN's close_notify goes once they are sent.
        // (A failed write closed the channel: nothing more to do.)
        return context.writtenBytesSent().assumeIsolated().flatMap { _ in
            guard self.inputEnded else { return self.closeOutput(context) }
            context.close(promise: nil)
            return self.channel.closeFuture
        }.nonisolated()
    }

    /// How long `close()` waits for a peer that may still be sending to end its side, once
    /// nothing is left to send. A peer that answers the FIN does so at once; meanwhile the
    /// connection holds its descriptor, so the wait is short.
    static let peerEndPatience = TimeAmount.seconds(1)

    /// Shuts the write side down after the bytes queued; then the peer's end closes the channel.
    private func closeOutput(_ context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let outputClosed = context.eventLoop.makePromise(of: Void.self)
        context.close(mode: .output, promise: outputClosed)
        outputClosed.futureResult.assumeIsolated().whenComplete { _ in
            if self.inputEnded { context.close(promise: nil) }
        }
        return outputClosed.futureResult
    }

    /// Closes the channel once the bytes written so far have been handed to the kernel; the
    /// future completes then.
    @discardableResult
    private func closeWhenSent(_ context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let sent = context.writtenBytesSent()
        sent.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        return sent
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.isWritable = context.channel.isWritable
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        // A channel closed before it was registered (its listener closed meanwhile) never fires
        // `channelInactive`: end what waits here all the same.
        self.cancelReadTimer()
        if !self.channelClosed {
            self.inputEnded = true
            self.channelClosed = true
            self.serveWaitingRead()
            self.resumeWritabilityWaiters(with: .failure(self.writeError ?? .endOfStream))
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        if let start = self.startOnActive {
            self.startOnActive = nil
            start(TCPConnection(engine: self))
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After `close()` the socket is still read while written bytes drain (closing with
        // unread bytes would send a reset), but nothing is kept. After `stopReading()` the input
        // has ended here: what a read SwiftNIO had already asked for brings is not kept either.
        if self.closedLocally || self.readingStopped { return }
        self.received.append(self.unwrapInboundIn(data))
        if self.pendingRead != nil {
            self.serveWaitingRead()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            self.inputEnded = true
            self.serveWaitingRead()
        } else if self.handshakePending, case TLSUserEvent.handshakeCompleted = event {
            self.handshakePending = false
            if self.finAwaitsHandshake || self.closeAwaitsHandshake {
                let sendFIN = self.finAwaitsHandshake
                let close = self.closeAwaitsHandshake
                self.finAwaitsHandshake = false
                self.closeAwaitsHandshake = false
                // After this event NIOSSLHandler sends what it held back for the handshake: the
                // FIN, or the close, goes on once it has.
                context.eventLoop.assumeIsolated().execute {
                    guard let context = self.context, !self.channelClosed else { return }
                    if sendFIN { self.sendFIN(context) }
                    if close { self.closeAfterSending(context) }
                }
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if self.failure == nil {
            self.failure = Self.describe(error)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Closed while handing writes to the kernel: it refused them (EPIPE, ECONNRESET), which
        // SwiftNIO reports only to the writes' promises. Unless the peer had already ended its
        // stream cleanly, reads and writes now fail as a reset.
        if self.isFlushing && self.failure == nil && !self.inputEnded && !self.closedLocally {
            self.failure = .connectionReset
        }
        self.inputEnded = true
        self.channelClosed = true
        self.cancelReadTimer()
        self.serveWaitingRead()
        self.resumeWritabilityWaiters(with: .failure(self.writeError ?? .endOfStream))
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        self.isWritable = context.channel.isWritable
        if self.isWritable {
            self.resumeWritabilityWaiters(with: .success(()))
        }
        context.fireChannelWritabilityChanged()
    }

    /// The socket asks to read more: hold back while the receive limit is reached.
    func read(context: ChannelHandlerContext) {
        if self.mayRead {
            context.read()
        } else {
            self.readHeldBack = true
        }
    }

    /// The typed error for a transport failure.
    static func describe(_ error: any Error) -> SillyError {
        if let error = error as? SillyError { return error }
        if let error = error as? IOError {
            return error.errnoCode == ECONNRESET ? .connectionReset : .system(errno: error.errnoCode)
        }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return .tls(describing: error)
        }
        return .failed("\(error)")
    }
}
