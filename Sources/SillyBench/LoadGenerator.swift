import Histogram
import NIOCore
import NIOPosix
import Silly
import Synchronization

/// The tutorial's stress test as a load generator: `clients` connections, each keeping
/// `pipeline` lines in flight, every echoed byte checked, latency in an HdrHistogram.
///
/// Each client connects from a task on one of the generator's event loops, then runs its
/// exchange from that loop through the callback-level API (``ClientDriver``): no task is resumed
/// per echo, and the writes of a batch of socket events go out together.
public struct LoadGenerator: Sendable {
    /// What the run does.
    public let configuration: LoadConfiguration
    /// Echoes verified so far, by all clients: for a progress line.
    public let progress = Progress()
    /// Set by ``stop()``.
    private let stopping = Stopping()

    /// A generator for `configuration`; nothing starts until ``run()``.
    public init(configuration: LoadConfiguration) {
        self.configuration = configuration
    }

    /// Echoes verified so far; clients add in batches, so it lags a little.
    public final class Progress: Sendable {
        private let count = Atomic<Int>(0)
        func add(_ n: Int) { self.count.add(n, ordering: .relaxed) }
        /// Echoes verified so far.
        public var messages: Int { self.count.load(ordering: .relaxed) }
    }

    /// Set once the run is asked to stop early.
    final class Stopping: Sendable {
        private let flag = Atomic<Bool>(false)
        func set() { self.flag.store(true, ordering: .relaxed) }
        var isSet: Bool { self.flag.load(ordering: .relaxed) }
    }

    /// Ends the run early (silly-bench's Ctrl-C): clients send no more lines, wait for the
    /// echoes already in flight, and close, so every line sent is still checked and counted.
    /// ``run()`` then returns a result marked ``LoadResult/interrupted``. Safe from any thread.
    public func stop() {
        self.stopping.set()
    }

    /// Runs every client to its end and returns the merged result, timed on a monotonic clock
    /// from the first connect until the last client is done.
    public func run() async -> LoadResult {
        var result = LoadResult(configuration: self.configuration)
        let start = ContinuousClock.now
        let deadline = self.configuration.duration.map { NIODeadline.now() + TimeAmount(saturating: $0) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, self.configuration.threads))
        defer { group.shutdownGracefully { _ in } }
        let loops = Array(group.makeIterator())
        let recorders = loops.map { _ in LatencyRecorder() }
        let clients: [Task<ClientResult, Never>] = (0..<self.configuration.clients).map { index in
            let loop = loops[index % loops.count]
            let recorder = recorders[index % loops.count]
            return Task(executorPreference: EventLoopExecutor.for(loop)) {
                await self.client(index, on: loop, latency: recorder, deadline: deadline)
            }
        }
        for client in clients {
            result.add(await client.value)
        }
        for recorder in recorders {
            result.latency.add(recorder.histogram)
        }
        result.elapsed = ContinuousClock.now - start
        result.interrupted = self.stopping.isSet
        return result
    }

    /// One connection: connect (in a task on its loop), then let a ``ClientDriver`` run the
    /// exchange from the loop itself, and wait for its result.
    private func client(
        _ index: Int, on loop: any EventLoop, latency: LatencyRecorder, deadline: NIODeadline?
    ) async -> ClientResult {
        var result = ClientResult()
        let configuration = self.configuration
        let connectStart = NIODeadline.now()
        let conn: TCPConnection
        do {
            var options = ConnectionOptions()
            options.maxLineLength = max(configuration.size, 64)
            // A pipeline of large lines must fit the send queue (4 MiB by default).
            let inFlight = configuration.size.multipliedReportingOverflow(by: configuration.pipeline)
            let room = inFlight.partialValue.multipliedReportingOverflow(by: 2)
            options.sendQueueLimit = max(options.sendQueueLimit, inFlight.overflow || room.overflow ? .max : room.partialValue)
            conn = try await TCP.connect(
                configuration.address, timeout: configuration.connectTimeout, tls: configuration.tls, options: options,
                group: loop)
        } catch {
            result.errors.connect += 1
            result.failure = ClientFailure("connect: \(error)")
            return result
        }
        result.connectMicroseconds = UInt64((NIODeadline.now() - connectStart).nanoseconds / 1000)
        // The driver records into `latency` from the connection's loop: it must be the recorder's.
        precondition(conn.eventLoop === loop, "a client's connection must live on its recorder's loop")
        let driver = ClientDriver(
            connection: conn, line: ByteBuffer(bytes: configuration.line(for: index)), configuration: configuration,
            deadline: deadline, stopping: self.stopping, progress: self.progress, latency: latency, result: result)
        return await withCheckedContinuation { continuation in
            conn.eventLoop.execute { driver.start(continuation) }
        }
    }
}

/// Runs one client's exchange on its connection's event loop, through the callback-level API:
/// a task resumed per echo would cost the client as much as the server it measures.
///
/// Sends `pipeline` lines, then one more for each echo that comes back intact; checks every
/// byte against the line of that sequence number (so a duplicated or stale echo is a mismatch),
/// and that nothing is left over after the last echo; records each round trip. Loop-confined:
/// every method runs on the connection's loop.
private final class ClientDriver: TCPReadHandler, @unchecked Sendable {
    // @unchecked: created in a task, then only touched on `connection.eventLoop`.
    let connection: TCPConnection
    /// How many digits of the sequence number each line carries (``LoadConfiguration/sequenceDigits``).
    let digits: Int
    let readTimeout: TimeAmount
    let deadline: NIODeadline?
    let stopping: LoadGenerator.Stopping
    let progress: LoadGenerator.Progress
    let total: Int
    /// Shared with the other clients of this loop.
    let latency: LatencyRecorder
    // Loop-confined and never accessed overlappingly: no dynamic exclusivity checks per echo.
    @exclusivity(unchecked) var result: ClientResult
    /// The lines being sent, a few slots reused in turn: each gets the next sequence number
    /// written in place, without a copy once the channel has let go of its last send (an echo
    /// came back, so it has). They start as one shared buffer, copied on a slot's first write.
    @exclusivity(unchecked) var outgoing: [ByteBuffer]
    /// The line the next echo must equal: its sequence number rewritten in place per echo.
    @exclusivity(unchecked) var expected: ByteBuffer
    @exclusivity(unchecked) var sentAt: [UInt64]
    @exclusivity(unchecked) var sent = 0
    @exclusivity(unchecked) var reported = 0
    @exclusivity(unchecked) var continuation: CheckedContinuation<ClientResult, Never>?

    init(connection: TCPConnection, line: ByteBuffer, configuration: LoadConfiguration, deadline: NIODeadline?,
         stopping: LoadGenerator.Stopping, progress: LoadGenerator.Progress, latency: LatencyRecorder, result: ClientResult) {
        self.connection = connection
        self.digits = configuration.sequenceDigits
        self.outgoing = [ByteBuffer](repeating: line, count: min(max(1, configuration.pipeline), 16))
        self.expected = ByteBuffer(buffer: line)
        self.readTimeout = TimeAmount(saturating: configuration.readTimeout)
        self.deadline = deadline
        self.stopping = stopping
        self.progress = progress
        self.latency = latency
        self.total = deadline == nil ? configuration.messages : Int.max
        self.result = result
        self.sentAt = [UInt64](repeating: 0, count: max(1, configuration.pipeline))
    }

    func start(_ continuation: CheckedContinuation<ClientResult, Never>) {
        self.continuation = continuation
        while self.sent < min(self.sentAt.count, self.total) && !self.stopping.isSet {
            guard self.send(at: .now()) else { return self.finish() }
        }
        self.pump()
    }

    /// Reads echoes for as long as they are already buffered; returns when one must be waited for.
    private func pump() {
        while self.result.messages < self.sent {
            guard let echo = self.connection.tryRead(count: self.expected.readableBytes, timeout: self.readTimeout, notifying: self)
            else { return }
            guard self.received(echo) else { return self.finish() }
        }
        // Every expected echo came: anything more the server sent (a duplicate, a line nobody
        // asked for) and that is already here is a mismatch too.
        let extra = self.connection.unreadBytesOnLoop
        if extra > 0, case .success(let bytes)? = self.connection.tryRead(count: extra, notifying: self) {
            self.result.errors.mismatch += 1
            self.result.failure = ClientFailure(
                "mismatch: bytes after the last echo",
                received: "\(ClientFailure.quoted(bytes)) (\(extra) \(extra == 1 ? "byte" : "bytes"))")
        }
        self.finish()
    }

    func readCompleted(_ echo: Result<ByteBuffer, SillyError>) {
        guard self.received(echo) else { return self.finish() }
        self.pump()
    }

    /// Checks and records one echo, and sends the next line; false when the client must stop.
    private func received(_ echo: Result<ByteBuffer, SillyError>) -> Bool {
        let now = NIODeadline.now()
        switch echo {
        case .success(let bytes):
            let sequence = self.result.messages
            let digits = self.digits
            self.expected.withUnsafeMutableReadableBytes { LoadConfiguration.writeSequence(sequence, into: $0, digits: digits) }
            guard bytes == self.expected else {
                self.result.errors.mismatch += 1
                // With what else came (a server's refusal is longer than the line sent).
                var shown = bytes
                if case .success(var rest)? = self.connection.tryRead(count: self.connection.unreadBytesOnLoop, notifying: self) {
                    shown.writeBuffer(&rest)
                }
                self.result.failure = ClientFailure("mismatch: an echo came back different", received: ClientFailure.quoted(shown))
                return false
            }
            let depth = self.sentAt.count
            self.latency.histogram.record((now.uptimeNanoseconds &- self.sentAt[self.result.messages % depth]) / 1000)
            self.result.messages += 1
            self.result.bytes += bytes.readableBytes
            if self.result.messages - self.reported >= 64 {
                self.progress.add(self.result.messages - self.reported)
                self.reported = self.result.messages
            }
            let timeIsUp = self.deadline.map { now >= $0 } ?? false
            if self.sent < self.total && !timeIsUp && !self.stopping.isSet {
                return self.send(at: now)
            }
            return true
        case .failure(.endOfStream) where self.connection.unreadBytesOnLoop > 0:
            // Part of an echo, then the end: what did come is quoted (a server's refusal, say,
            // shorter than the line sent).
            self.result.errors.mismatch += 1
            var shown = ByteBuffer()
            if case .success(let rest)? = self.connection.tryRead(count: self.connection.unreadBytesOnLoop, notifying: self) {
                shown = rest
            }
            self.result.failure = ClientFailure(
                "mismatch: an echo cut short by the end of the stream", received: ClientFailure.quoted(shown))
            return false
        case .failure(let error):
            switch error {
            case .timedOut: self.result.errors.timeout += 1
            case .connectionReset: self.result.errors.reset += 1
            case .endOfStream: self.result.errors.closed += 1
            case .tls: self.result.errors.tls += 1
            default: self.result.errors.other += 1
            }
            self.result.failure = ClientFailure("read: \(error)")
            return false
        }
    }

    private func send(at now: NIODeadline) -> Bool {
        self.sentAt[self.sent % self.sentAt.count] = now.uptimeNanoseconds
        let slot = self.sent % self.outgoing.count
        let sequence = self.sent
        let digits = self.digits
        self.outgoing[slot].withUnsafeMutableReadableBytes { LoadConfiguration.writeSequence(sequence, into: $0, digits: digits) }
        do {
            try self.connection.writeOnLoop(self.outgoing[slot])
        } catch {
            self.result.errors.other += 1
            self.result.failure = ClientFailure("write: \(error)")
            return false
        }
        self.sent += 1
        return true
    }

    private func finish() {
        guard let continuation = self.continuation else { return }
        self.continuation = nil
        self.progress.add(self.result.messages - self.reported)
        self.connection.closeOnLoop()
        continuation.resume(returning: self.result)
    }
}
