import NIOCore

/// A TCP connection with the tutorial's sequential API: `read` waits until its request is met,
/// `write` queues and returns.
///
/// A handle, like a file descriptor: copies refer to the same connection, and two handles are
/// equal when they refer to the same one. (A struct around the connection's engine, so an idle
/// connection keeps no handle object of its own.)
///
/// Calls are cheapest from the connection's own task (the `accept` handler, or a task started with
/// ``Tasks/fork(on:_:)`` on ``eventLoop``): they run on the channel's event loop, and a read the
/// receive buffer can already satisfy returns without suspending. From anywhere else they hop to
/// that loop. One read may wait at a time; writes may come from any task.
public struct TCPConnection: @unchecked Sendable, Hashable {
    // @unchecked: the engine's state is only touched on `eventLoop`; every path below checks
    // `inEventLoop` first or runs in a closure the loop executes. (`NIOLoopBound` would check it
    // again on every access and store the loop a second time in each idle connection.) Read from
    // any thread: the engine's `channel` and `executor` (constants), and its `proxy`, written
    // once on the loop before the connection is handed to anyone.
    private let loopEngine: ConnectionEngine

    init(engine: ConnectionEngine) {
        self.loopEngine = engine
    }

    /// The channel: its addresses and close future can be read from any thread.
    var channel: any Channel { self.loopEngine.channel }

    /// The event loop that owns the connection's socket.
    /// (Read from the engine's executor, shared by every connection of the loop and immutable.)
    public var eventLoop: any EventLoop { self.loopEngine.executor.eventLoop }

    /// The engine, for code running on `eventLoop` (asserted in debug builds; release builds
    /// do not even compute the loop).
    var engine: ConnectionEngine {
        assert(self.eventLoop.inEventLoop, "a connection's engine is touched off its event loop")
        return self.loopEngine
    }

    /// Whether both handles refer to the same connection.
    public static func == (lhs: TCPConnection, rhs: TCPConnection) -> Bool {
        lhs.loopEngine === rhs.loopEngine
    }

    /// Hashes the connection's identity, as `==` compares it.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(self.loopEngine))
    }

    /// The peer's address, as `IP:port`, for the connection's whole life (after it closed too).
    /// On a PROXY protocol listener: the original client's, as the header gave it (the socket's
    /// peer, for `LOCAL` and `UNKNOWN` headers).
    public var remoteAddress: Endpoint? {
        self.loopEngine.proxy?.header.source ?? Endpoint(self.loopEngine.remoteSocketAddress)
    }
    /// The PROXY protocol header the connection began with, on a listener that asks for one.
    public var proxyHeader: ProxyHeader? { self.loopEngine.proxy?.header }
    /// This side's address, as `IP:port`; `nil` once the connection has closed.
    public var localAddress: Endpoint? { Endpoint(self.channel.localAddress) }

    // MARK: Reading

    /// Reads up to and including `delimiter` (`"\n"`, `"\r\n"`, any bytes), however the bytes
    /// were split into segments.
    ///
    /// After the peer closed, a final line without the delimiter is returned as it is; the read
    /// after it fails with ``SillyError/endOfStream``.
    /// - Parameters:
    ///   - maxLength: the longest line to search for, delimiter included; longer fails with
    ///     ``SillyError/lineTooLong(limit:)`` (at once if the delimiter itself is longer).
    ///     Default: the connection's `maxLineLength` (64 KiB).
    ///   - timeout: fail with ``SillyError/timedOut`` if the line is not complete by then.
    @inlinable @inline(__always)
    public func read(
        until delimiter: Delimiter,
        maxLength: Int? = nil,
        timeout: Duration? = nil
    ) async throws(SillyError) -> ByteBuffer {
        precondition(maxLength ?? 0 >= 0, "maxLength cannot be negative")
        return try await self.perform(.line(delimiter, maxLength: maxLength.map { Int32(clamping: $0) }), timeout: timeout)
    }

    /// Reads exactly `count` bytes. `read(count: unreadBytes)` reads whatever is buffered, an empty
    /// buffer if nothing is.
    @inlinable @inline(__always)
    public func read(count: Int, timeout: Duration? = nil) async throws(SillyError) -> ByteBuffer {
        precondition(count >= 0, "a read count cannot be negative")
        return try await self.perform(.count(count), timeout: timeout)
    }

    /// Reads whatever is buffered, waiting for at least one byte; at most `maxLength` bytes.
    @inlinable @inline(__always)
    public func readAvailable(maxLength: Int = .max, timeout: Duration? = nil) async throws(SillyError) -> ByteBuffer {
        precondition(maxLength > 0, "maxLength must be positive")
        return try await self.perform(.available(max: maxLength), timeout: timeout)
    }

    /// ``read(until:maxLength:timeout:)`` decoded as UTF-8 (invalid bytes become U+FFFD).
    public func readString(until delimiter: Delimiter = .newline, timeout: Duration? = nil) async throws(SillyError) -> String {
        String(buffer: try await self.read(until: delimiter, timeout: timeout))
    }

    /// The number of received bytes not yet read.
    public var unreadBytes: Int {
        get async { await self.onLoop { $0.unreadBytes } }
    }

    /// Every read of the async API. Inlined into the caller's own async function, as are the
    /// public reads, `write` and `waitUntilWritable` (always: left to the optimizer, a read with
    /// a timeout in another module was called, not inlined): on the loop, a read or write then
    /// allocates no async frame of its own, which at a thousand connections is a cache line
    /// missed per call, and costs no executor switch on entry and return.
    ///
    /// On the loop, a read the buffer satisfies returns here without suspending. Otherwise the
    /// task suspends until the engine decides the read. Cancelling the task is noticed when a read
    /// must wait, not while it waits: a waiting read ends with data, its timeout, or `close()` (the
    /// tutorial's way to stop a reader). A per-read cancellation handler would cost every read a
    /// status record and every idle connection a frame.
    @inlinable @inline(__always)
    func perform(_ request: ReadRequest, timeout: Duration?) async throws(SillyError) -> ByteBuffer {
        let onLoop = self.eventLoop.inEventLoop
        if onLoop, let result = self.readNow(request) {
            return try result.get()
        }
        // Off the loop the buffer is tried there: a cancelled read still gets what is buffered.
        let cancelled = Task.isCancelled
        if onLoop && cancelled { throw .cancelled }
        let result = await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<ByteBuffer, SillyError>, Never>) in
            self.wait(for: request, timeout: timeout, onLoop: onLoop, cancelled: cancelled, continuation: continuation)
        }
        return try result.get()
    }

    /// What the engine answers `request` now (on the loop); `nil`: the read must wait.
    @usableFromInline
    func readNow(_ request: ReadRequest) -> Result<ByteBuffer, SillyError>? {
        self.loopEngine.read(request)
    }

    /// Parks a read the buffer could not satisfy with the engine, hopping to the loop if needed
    /// (and there, if the task was `cancelled`, fails it unless the buffer satisfies it).
    @usableFromInline
    func wait(
        for request: ReadRequest, timeout: Duration?, onLoop: Bool, cancelled: Bool,
        continuation: UnsafeContinuation<Result<ByteBuffer, SillyError>, Never>
    ) {
        let timeout = timeout.map(TimeAmount.init(saturating:))
        if onLoop {
            // `perform` tried the buffer on this turn of the loop, and nothing ran since.
            self.loopEngine.wait(for: request, timeout: timeout, waiter: .task(continuation))
        } else {
            self.eventLoop.execute {
                self.engine.readOrWait(request, timeout: timeout, waiter: .task(continuation), cancelled: cancelled)
            }
        }
    }

    // MARK: Writing

    /// Queues `data` for sending and returns; it is flushed once the current batch of writes ends
    /// (at once if the high water mark's worth, 64 KiB by default, is waiting unflushed). Fails if the connection
    /// is closed or its output shut down, or if the send queue would pass its limit.
    @inlinable @inline(__always)
    public func write(_ data: ByteBuffer) async throws(SillyError) {
        if self.eventLoop.inEventLoop {
            return try self.writeOnLoop(data)
        }
        try await self.writeFromOffLoop(data)
    }

    /// `write` from a task that is not on the connection's loop: hops there, writes, flushes.
    @usableFromInline
    func writeFromOffLoop(_ data: ByteBuffer) async throws(SillyError) {
        try await self.onLoop { engine in
            let result = Result { () throws(SillyError) in try engine.write(data) }
            engine.flush()
            return result
        }.get()
    }

    /// Queues the UTF-8 bytes of `string`.
    public func write(_ string: String) async throws(SillyError) {
        try await self.write(ByteBuffer(string: string))
    }

    /// Queues raw bytes.
    public func write(_ bytes: some Sequence<UInt8>) async throws(SillyError) {
        try await self.write(ByteBuffer(bytes: bytes))
    }

    /// Queues several buffers and flushes them (in one `write(2)` unless they pass the flush
    /// threshold). Stops at the first that fails.
    public func write(contentsOf buffers: [ByteBuffer]) async throws(SillyError) {
        try await self.onLoop { engine in
            let result = Result { () throws(SillyError) in
                for buffer in buffers { try engine.write(buffer) }
            }
            engine.flush()
            return result
        }.get()
    }

    /// Waits, once the unsent bytes have passed the high water mark, until they are below the
    /// low water mark (returns at once otherwise): the backpressure a handler that writes faster
    /// than the peer reads should apply. With a `timeout`, it fails with ``SillyError/timedOut``
    /// if they are not below it by then (the connection stays open).
    @inlinable @inline(__always)
    public func waitUntilWritable(timeout: Duration? = nil) async throws(SillyError) {
        if self.eventLoop.inEventLoop, let result = self.writableNow {
            return try result.get()
        }
        try await self.waitForWritability(timeout: timeout)
    }

    /// Whether the send queue is below its watermark now (on the loop); `nil`: must wait.
    @usableFromInline
    var writableNow: Result<Void, SillyError>? { self.loopEngine.writableNow }

    /// Suspends until the engine says the send queue drained (or the connection ended). As
    /// with reads, cancellation is noticed when the wait would begin, not during it.
    @usableFromInline
    func waitForWritability(timeout: Duration?) async throws(SillyError) {
        let loop = self.eventLoop
        let timeAmount = timeout.map(TimeAmount.init(saturating:))
        let cancelled = Task.isCancelled
        let result = await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<Void, SillyError>, Never>) in
            if loop.inEventLoop {
                self.engine.waitUntilWritable(continuation, timeout: timeAmount, cancelled: cancelled)
            } else {
                loop.execute { self.engine.waitUntilWritable(continuation, timeout: timeAmount, cancelled: cancelled) }
            }
        }
        try result.get()
    }

    /// The number of written bytes not yet handed to the kernel.
    public var unsentBytes: Int {
        get async { await self.onLoop { $0.unsentBytes } }
    }

    // MARK: Lifecycle

    /// Whether the connection can still be written to: open, not closed by this side, its output
    /// not shut down.
    public var isAlive: Bool {
        get async { await self.onLoop { $0.isAlive } }
    }

    /// Stops reading from the socket while `bytes` are buffered unread (`nil`: no limit); TCP
    /// flow control then slows the peer. The tutorial framework's `conn:limit`.
    /// `bytes` cannot be negative (a precondition).
    public func setReceiveLimit(_ bytes: Int?) async {
        precondition(bytes ?? 0 >= 0, "a receive limit cannot be negative")
        await self.onLoop { $0.setReceiveLimit(bytes) }
    }

    /// Ends the input here, as if the peer had closed: reads return what is already buffered
    /// (a final unterminated line too), then fail with ``SillyError/endOfStream``; nothing more is
    /// read from the socket. Writing still works. For a graceful shutdown that lets a handler
    /// finish what it has received.
    public func stopReading() async {
        await self.onLoop { $0.stopReading() }
    }

    /// Half-closes the connection: sends what was written, then a FIN (`shutdown(SHUT_WR)`), as
    /// `nc -N` does at the end of its input. Reading goes on until the peer closes. Writes fail
    /// with ``SillyError/activeClosed`` from then on, and so does a ``waitUntilWritable(timeout:)``
    /// waiting in another task.
    public func shutdownOutput() async {
        await self.onLoop { $0.shutdownOutput() }
    }

    /// Closes the connection. A read waiting in another task fails with ``SillyError/activeClosed``;
    /// bytes already written are still sent (while the peer keeps taking them: see
    /// ``ConnectionOptions/closeLinger``). While
    /// the peer may still be sending, the write side is shut down after them and the peer's bytes
    /// are read and dropped until it closes too (for at most a second once nothing is left to
    /// send), so that it sees a clean end rather than a reset. Returns at once; closing twice
    /// does nothing.
    public func close() async {
        await self.onLoop { _ = $0.close() }
    }

    /// Closes the connection at once: as ``close()``, but what was written and not yet handed to
    /// the kernel is dropped rather than sent, and the peer may see a reset. For a process that
    /// must end now (a second Ctrl-C), or a peer that must not be waited for.
    public func abort() async {
        await self.onLoop { $0.abort() }
    }

    /// Waits until the connection is closed: by the peer, by a failure, or, after ``close()``,
    /// once what was written has been sent (or given up on: see ``ConnectionOptions/closeLinger``)
    /// and the peer has ended its side (or a second has passed, `closeLinger` more while it is
    /// still sending; over TLS, swift-nio-ssl's shutdown can add up to 5 s). `close()` returns at
    /// once; a process about to exit waits here, or the bytes still queued are lost with it.
    /// Cancelling the task does not end the wait: ``abort()`` does.
    public func waitUntilClosed() async {
        try? await self.channel.closeFuture.get()
    }

    /// Runs `body` with the engine on the connection's loop, hopping there if needed.
    private func onLoop<T: Sendable>(_ body: @escaping @Sendable (ConnectionEngine) -> T) async -> T {
        if self.eventLoop.inEventLoop {
            return body(self.engine)
        }
        return await withUnsafeContinuation { continuation in
            self.eventLoop.execute { continuation.resume(returning: body(self.engine)) }
        }
    }
}
