import NIOCore
import Synchronization

/// A `TaskExecutor` that runs jobs on one SwiftNIO event loop, and flushes the writes they queued.
///
/// A connection's task prefers the executor of its channel's loop, so a reader resumed from
/// `channelRead` and the writes it makes need no thread hop. Jobs enqueued on the loop itself
/// (every reader resumed by incoming data) go to a run queue, run in groups: right inside the
/// `enqueue` that makes `batchLimit` (16) of them wait, while SwiftNIO is still handling a batch
/// of socket events (unless that `enqueue` comes from a task, a group, or a flush: those wait),
/// and by one `execute` once it has handled the batch. Writes queue in the channel; the connections
/// that queued some are flushed once a group of jobs has run (their tasks suspended, returned or
/// hopped away): one `write` per connection per group, not per line, and the writes go out in
/// bursts, which wake each peer once rather than once per message (measured: running each
/// reader at its channel's `channelReadComplete` instead cost a fast peer a wakeup per
/// message, and the server no less CPU; running only at the end of the batch cost 10–16% more
/// CPU at 1,000 connections, whose state no longer stayed in the cache between read and run).
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
    /// A drain was asked for by the jobs (or flushes) running: it is scheduled once they are done.
    private var drainFollows = false
    /// Drains that jobs keep asking for (a task yielding in a loop) must not starve the sockets.
    private var chain = FairChain()
    @exclusivity(unchecked) private var pendingFlushes: [ConnectionEngine] = []
    /// A group of jobs is running, or queued writes are being flushed: no group runs inside
    /// either, and writes made meanwhile are flushed by the one under way.
    private var isBusy = false

    /// The loop's timers (read and write timeouts, PROXY header deadlines, `Time.after`, the Lua
    /// runtime's `time.after`): used on the loop only.
    package let timers: TimerQueue

    private init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.timers = TimerQueue(loop: eventLoop)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if self.eventLoop.inEventLoop {
            self.runQueue.append(job)
            if self.runQueue.count >= Self.batchLimit && !self.isBusy && !Self.inSwiftTask {
                self.runQueuedJobs()
            } else {
                self.scheduleDrain()
            }
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
        if self.isBusy {
            self.drainFollows = true
        } else {
            self.chain.reset()
            self.eventLoop.assumeIsolated().execute { self.drain() }
        }
    }

    /// Schedules the drain that the jobs or flushes just done asked for, as the next link of
    /// their chain: after 1 ms of such links in a row, the loop polls its sockets first.
    private func scheduleFollowingDrain() {
        guard self.drainFollows else { return }
        self.drainFollows = false
        self.chain.next(on: self.eventLoop) { self.drain() }
    }

    /// How many resumed tasks wait before they run, while SwiftNIO is still handling socket
    /// events. Unbounded, a batch of hundreds of connections touched each one's task, channel and
    /// buffers three times over (read, run, flush) with the whole batch in between, which no
    /// longer fit in the core's cache.
    static let batchLimit = 16

    /// Whether a task is current on this thread (jobs are not run from inside another job).
    private static var inSwiftTask: Bool { withUnsafeCurrentTask { $0 != nil } }

    /// Runs what is queued at the end of the loop's turn.
    private func drain() {
        self.drainScheduled = false
        self.runQueuedJobs()
    }

    /// Runs the jobs queued so far (jobs they enqueue wait for the next run, a link of a
    /// ``FairChain``, so I/O is not starved), then flushes the connections they wrote to.
    private func runQueuedJobs() {
        // Swap the queues (no copy): jobs enqueued while these run go to the spare one.
        var jobs: [UnownedJob] = []
        swap(&jobs, &self.spareRunQueue)
        swap(&jobs, &self.runQueue)
        self.isBusy = true
        let executor = self.asUnownedTaskExecutor()
        for job in jobs {
            job.runSynchronously(on: executor)
        }
        jobs.removeAll(keepingCapacity: true)
        self.spareRunQueue = jobs
        // A task a flush resumes (its send queue drained) waits for the next group instead of
        // running inside this group's flushes.
        self.flushPending()
        self.isBusy = false
        self.scheduleFollowingDrain()
    }

    /// Queues `engine` to be flushed when the group of jobs running has run (or, written outside
    /// one — from a callback-level front end — at the end of this batch of event-loop work).
    /// Called on the loop by the first unflushed write of a batch.
    func scheduleFlush(_ engine: ConnectionEngine) {
        self.pendingFlushes.append(engine)
        if !self.isBusy && self.pendingFlushes.count == 1 {
            self.eventLoop.assumeIsolated().execute { self.flushPending() }
        }
    }

    /// Flushes every connection written to since the last flush, and those written to meanwhile:
    /// a flush can run code that writes (a callback-level front end told its peer is reading
    /// again). No group of tasks runs inside it.
    func flushPending() {
        let wasBusy = self.isBusy
        self.isBusy = true
        while !self.pendingFlushes.isEmpty {
            var engines: [ConnectionEngine] = []
            swap(&engines, &self.pendingFlushes)
            for engine in engines {
                engine.flush()
            }
            if self.pendingFlushes.isEmpty {
                engines.removeAll(keepingCapacity: true)
                self.pendingFlushes = engines
            }
        }
        self.isBusy = wasBusy
        if !wasBusy { self.scheduleFollowingDrain() }
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
