import NIOCore
import NIOPosix
import Synchronization

/// A `TaskExecutor` that runs jobs on one SwiftNIO event loop, and flushes the writes they queued.
///
/// A connection's task prefers the executor of its channel's loop, so a reader resumed from
/// `channelRead` and the writes it makes need no thread hop. Writes queue in the channel; the
/// connections that queued some are flushed once when the job that wrote them ends (the task
/// suspended, returned or hopped away): one `writev` per batch, not per line.
///
/// There is one executor per event loop, found with ``EventLoopExecutor/for(_:)``.
public final class EventLoopExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `pendingFlushes` and `isRunningJob` are only touched on `eventLoop`.

    /// The loop every job runs on.
    public let eventLoop: any EventLoop
    private var pendingFlushes: [ConnectionEngine] = []
    private var isRunningJob = false

    private init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute {
            self.isRunningJob = true
            job.runSynchronously(on: self.asUnownedTaskExecutor())
            self.isRunningJob = false
            self.flushPending()
        }
    }

    /// Queues `engine` to be flushed at the end of the current job (or, outside a job, at the end
    /// of this event-loop tick). Called on the loop by the first unflushed write of a batch.
    func scheduleFlush(_ engine: ConnectionEngine) {
        self.pendingFlushes.append(engine)
        if !self.isRunningJob && self.pendingFlushes.count == 1 {
            self.eventLoop.assumeIsolated().execute { self.flushPending() }
        }
    }

    /// Flushes every connection written to since the last flush. Front ends that resume
    /// their own code on the loop (the Lua runtime) call it after each resumption.
    func flushPending() {
        // Indexed, not iterated: a flush may run code that queues another engine.
        var index = 0
        while index < self.pendingFlushes.count {
            let engine = self.pendingFlushes[index]
            index += 1
            engine.flush()
        }
        self.pendingFlushes.removeAll(keepingCapacity: true)
    }

    private static let registry = Mutex<[ObjectIdentifier: EventLoopExecutor]>([:])

    /// The executor of `eventLoop`, made on first use and kept for the life of the process
    /// (one per loop, so the registry stays as small as the number of loops).
    public static func `for`(_ eventLoop: any EventLoop) -> EventLoopExecutor {
        registry.withLock { executors in
            let key = ObjectIdentifier(eventLoop)
            if let executor = executors[key] { return executor }
            let executor = EventLoopExecutor(eventLoop)
            executors[key] = executor
            return executor
        }
    }

    /// The executor of the loop the caller runs on, if it runs on one.
    static var current: EventLoopExecutor? {
        MultiThreadedEventLoopGroup.currentEventLoop.map { Self.for($0) }
    }
}
