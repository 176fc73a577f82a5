import NIOCore

/// Schedules work queued by work on an event loop, without starving the loop's sockets.
///
/// SwiftNIO runs every task that is due before it polls its sockets again. Work that keeps queueing
/// more work for "now" (a task that yields in a loop) would keep the loop from ever reading a
/// socket again, so every other connection on it would hang. Here such a chain takes the loop's
/// next turn as usual for up to `slice` (1 ms) in a row; then its next link is scheduled `pause`
/// (10 µs) ahead, so that nothing is due when SwiftNIO next looks and it polls its sockets first.
package struct FairChain {
    private var startedAt: NIODeadline?

    package init() {}

    static let slice = TimeAmount.milliseconds(1)
    static let pause = TimeAmount.microseconds(10)

    /// The loop is starting work from outside the chain (socket events, another thread): a new
    /// chain starts with the next link.
    package mutating func reset() {
        self.startedAt = nil
    }

    /// Schedules the chain's next link on `loop`, from the loop, once the current work is done.
    package mutating func next(on loop: any EventLoop, _ work: @escaping () -> Void) {
        let now = NIODeadline.now()
        guard let startedAt = self.startedAt else {
            self.startedAt = now
            loop.assumeIsolated().execute(work)
            return
        }
        if now - startedAt < Self.slice {
            loop.assumeIsolated().execute(work)
        } else {
            self.startedAt = nil
            loop.assumeIsolated().scheduleTask(deadline: now + Self.pause, work)
        }
    }
}

/// Work to run on an event loop soon, in batches that never starve the loop's sockets: work a
/// batch adds runs in the next batch, a link of a ``FairChain``. For a front end that runs its own
/// tasks on the loop (the Lua runtime's yields and zero-delay timers). Use it on its loop only.
package final class FairQueue {
    private let loop: any EventLoop
    private var pending: [() -> Void] = []
    /// A drain is scheduled or running: work added meanwhile waits for it (or for its next link).
    private var drainScheduled = false
    private var chain = FairChain()

    package init(loop: any EventLoop) {
        self.loop = loop
    }

    /// Runs `work` on a coming turn of the loop, after the work already queued.
    package func add(_ work: @escaping () -> Void) {
        self.pending.append(work)
        guard !self.drainScheduled else { return }
        self.drainScheduled = true
        self.chain.reset()
        self.loop.assumeIsolated().execute { self.drain() }
    }

    private func drain() {
        var batch: [() -> Void] = []
        swap(&batch, &self.pending)
        for work in batch { work() }
        guard !self.pending.isEmpty else {
            self.drainScheduled = false
            return
        }
        self.chain.next(on: self.loop) { self.drain() }
    }
}
