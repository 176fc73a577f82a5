import NIOCore

/// Receives, on the connection's event loop, the result of a read started with
/// ``TCPConnection/tryRead(until:maxLength:timeout:notifying:)`` or
/// ``TCPConnection/tryRead(count:timeout:notifying:)`` that could not complete at once.
public protocol TCPReadHandler: AnyObject {
    /// Called once per deferred read, on the connection's event loop.
    func readCompleted(_ result: Result<ByteBuffer, SillyError>)
}

/// The callback-level front end: the same engine as the async API, for code that drives many
/// connections from their event loop without a task each (a load generator, a script runtime).
///
/// Every call here must be made on ``TCPConnection/eventLoop`` (it is checked in debug builds).
/// A read returns its result when the buffered bytes (or the stream's end) decide it now;
/// otherwise it returns `nil` and calls the handler later, exactly once. Handlers that read again
/// from `readCompleted` should loop on the returned results rather than recurse.
extension TCPConnection {
    /// Reads up to and including `delimiter`: now, or later through `handler`.
    public func tryRead(
        until delimiter: Delimiter,
        maxLength: Int? = nil,
        timeout: TimeAmount? = nil,
        notifying handler: some TCPReadHandler
    ) -> Result<ByteBuffer, SillyError>? {
        self.tryRead(.line(delimiter, maxLength: maxLength.map { Int32(clamping: $0) }), timeout: timeout, handler: handler)
    }

    /// Reads exactly `count` bytes: now, or later through `handler`.
    public func tryRead(
        count: Int,
        timeout: TimeAmount? = nil,
        notifying handler: some TCPReadHandler
    ) -> Result<ByteBuffer, SillyError>? {
        precondition(count >= 0, "a read count cannot be negative")
        return self.tryRead(.count(count), timeout: timeout, handler: handler)
    }

    /// Queues `data`; it is flushed at the end of the current batch of event-loop work (or with
    /// a group of resumed tasks on this loop, if one runs first), at once if 64 KiB (the high
    /// water mark) are waiting unflushed. A flush that finds the connection closed ends it right
    /// there: a read waiting on it completes (its handler is called) before this returns.
    public func writeOnLoop(_ data: ByteBuffer) throws(SillyError) {
        try self.engine.write(data)
    }

    /// Copies `bytes` into a buffer of the channel's allocator and queues it, as ``writeOnLoop(_:)``.
    public func writeOnLoop(bytes: UnsafeRawBufferPointer) throws(SillyError) {
        var buffer = self.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try self.engine.write(buffer)
    }

    /// Closes the connection, as ``TCPConnection/close()`` does. The future completes once what
    /// was written has been handed to the kernel (or could not be); the connection may stay open
    /// a moment longer, for the peer to end its side (``closeFuture``).
    @discardableResult
    public func closeOnLoop() -> EventLoopFuture<Void> {
        self.engine.close()
    }

    /// Completes when the connection is closed (by either side).
    public var closeFuture: EventLoopFuture<Void> { self.channel.closeFuture }

    /// The number of received bytes not yet read.
    public var unreadBytesOnLoop: Int { self.engine.unreadBytes }

    /// The number of written bytes not yet handed to the kernel.
    public var unsentBytesOnLoop: Int { self.engine.unsentBytes }

    /// Whether the connection can still be written to: open, not closed by this side, its output
    /// not shut down.
    public var isAliveOnLoop: Bool { self.engine.isAlive }

    /// Whether ``TCPConnection/waitUntilWritable(timeout:)`` would succeed at once: `false` from
    /// when the unsent bytes pass the high water mark until they drop below the low one, and once
    /// the connection cannot be written to (closed, failed, its output shut down: then the wait
    /// fails at once, with the reason). A task on the loop that awaits the wait only when this is
    /// `false` saves an executor switch per write.
    public var isWritableOnLoop: Bool {
        if case .success? = self.engine.writableNow { true } else { false }
    }

    /// Whether the peer will send nothing more: it ended its stream (EOF; it may still read, if
    /// it only half-closed), reset it, or the connection closed. Bytes it sent before may still
    /// be buffered, unread.
    public var peerEndedOnLoop: Bool { self.engine.peerEnded }

    /// Sets the receive limit, as ``TCPConnection/setReceiveLimit(_:)`` does.
    public func setReceiveLimitOnLoop(_ bytes: Int?) {
        precondition(bytes ?? 0 >= 0, "a receive limit cannot be negative")
        self.engine.setReceiveLimit(bytes)
    }

    private func tryRead(_ request: ReadRequest, timeout: TimeAmount?, handler: some TCPReadHandler) -> Result<ByteBuffer, SillyError>? {
        let engine = self.engine
        if let result = engine.read(request) {
            return result
        }
        engine.wait(for: request, timeout: timeout, waiter: .handler(handler))
        return nil
    }
}
