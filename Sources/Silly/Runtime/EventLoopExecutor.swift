import NIOCore
import Synchronization

/// A `TaskExecutor` that runs jobs on one SwiftNIO event loop, and flushes the writes they queued.
///
/// A connection's task prefers the executor of its channel's loop, so a reader resumed from
/// `channelRead` and the writes it makes need no thread hop. Jobs enqueued on the loop itself
/// (every reader resumed by incoming data) go to a run queue that one `execute` drains after
/// SwiftNIO has handled the current batch of socket events. Writes queue in the channel; the
/// connections that queued some are flushed once the drained jobs have run (their tasks
/// suspended, returned or hopped away): one `write` per connection per batch, not per line, and
/// the writes go out in one burst, which wakes each peer once rather than once per message
/// (measured: running each reader at its channel's `channelReadComplete` instead cost a fast
/// peer a wakeup per message, and the server no less CPU).
///
/// There is one executor per event loop, found with ``EventLoopExecutor/for(_:)``.
public final class EventLoopExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: every `var` below is only touched on `eventLoop`.

    /// The loop every job runs on.
    public let eventLoop: any EventLoop
    // Loop-confined and never accessed overlappingly: no dynamic exclusivity checks.
    @exclusivity(unchecked) private var runQueue: [UnownedJob] = []
    @exclusivity(unchecked) private var spareRunQueue: [UnownedJob] = []
    private var drainScheduled = false
    @exclusivity(unchecked) private var pendingFlushes: [ConnectionEngine] = []
    private var isRunningJobs = false

    private init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if self.eventLoop.inEventLoop {
            self.runQueue.append(job)
            self.scheduleDrain()
        } else {
            self.eventLoop.execute {
                self.runQueue.append(job)
                self.scheduleDrain()
            }
        }
    }

    private func scheduleDrain() {
        guard !self.drainScheduled else { return }
        self.drainScheduled = true
        self.eventLoop.assumeIsolated().execute { self.drain() }
    }

    /// Runs the jobs queued so far (jobs they enqueue wait for the next drain, so I/O is not
    /// starved), then flushes the connections they wrote to.
    private func drain() {
        self.drainScheduled = false
        // Swap the queues (no copy): jobs enqueued while these run go to the spare one.
        var jobs: [UnownedJob] = []
        swap(&jobs, &self.spareRunQueue)
        swap(&jobs, &self.runQueue)
        self.isRunningJobs = true
        let executor = self.asUnownedTaskExecutor()
        for job in jobs {
            job.runSynchronously(on: executor)
        }
        self.isRunningJobs = false
        jobs.removeAll(keepingCapacity: true)
        self.spareRunQueue = jobs
        self.flushPending()
    }

    /// Queues `engine` to be flushed when the jobs being drained have run (or, written outside a
    /// drain — from a callback-level front end — at the end of this batch of event-loop work).
    /// Called on the loop by the first unflushed write of a batch.
    func scheduleFlush(_ engine: ConnectionEngine) {
        self.pendingFlushes.append(engine)
        if !self.isRunningJobs && self.pendingFlushes.count == 1 {
            self.eventLoop.assumeIsolated().execute { self.flushPending() }
        }
    }

    /// Flushes every connection written to since the last flush.
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
}
