import NIOCore

/// The timers of one event loop, in a binary heap in which each timer knows its place, so that
/// cancelling one costs O(log n).
///
/// SwiftNIO keeps scheduled tasks in a heap too, but cancelling one searches it from the start:
/// O(n) in the loop's pending timers. The tutorial's idle timeout cancels and re-arms a timer on
/// every line (`time.cancel(t); t = time.after(...)`), so with thousands of connections, each
/// holding a timer, that search was a large part of every message's cost. Here SwiftNIO holds
/// one callback per loop, armed for the earliest timer.
///
/// Loop-confined: every method is called on `loop`. Actions run on the loop, in deadline order
/// (in scheduling order for equal deadlines); an action may schedule and cancel timers.
package final class TimerQueue {
    /// A scheduled action, until it runs or is cancelled.
    // @unchecked: its fields are only touched on its queue's loop; it may be handed to other
    // threads only as a reference to cancel it with (which hops to the loop).
    package final class Timer: @unchecked Sendable {
        package let deadline: NIODeadline
        fileprivate let sequence: UInt64
        /// Its place in the heap; `nil` once it ran or was cancelled.
        fileprivate var index: Int?
        fileprivate var action: (() -> Void)?

        fileprivate init(deadline: NIODeadline, sequence: UInt64, action: @escaping () -> Void) {
            self.deadline = deadline
            self.sequence = sequence
            self.action = action
        }

        /// Whether it is still waiting to run.
        package var isPending: Bool { self.index != nil }

        fileprivate func runsBefore(_ other: Timer) -> Bool {
            self.deadline != other.deadline ? self.deadline < other.deadline : self.sequence < other.sequence
        }
    }

    private let loop: any EventLoop
    private var heap: [Timer] = []
    private var nextSequence: UInt64 = 0
    /// SwiftNIO's callback for the earliest timer, and when it fires. It may fire early (that
    /// timer was cancelled): then it re-arms for the new earliest one.
    private var armed: NIOScheduledCallback?
    private var armedDeadline = NIODeadline.distantFuture
    /// Which arming is current. A callback replaced after SwiftNIO took it out of its own heap
    /// (due in the same batch) still runs: its older generation marks it stale.
    private var generation: UInt64 = 0

    /// What SwiftNIO calls back: one per arming, so that a stale one is told apart.
    private struct Wakeup: NIOScheduledCallbackHandler {
        let queue: TimerQueue
        let generation: UInt64

        func handleScheduledCallback(eventLoop: some EventLoop) {
            self.queue.wokeUp(self.generation)
        }

        func didCancelScheduledCallback(eventLoop: some EventLoop) {
            self.queue.wakeupCancelled(self.generation)
        }
    }

    package init(loop: any EventLoop) {
        self.loop = loop
    }

    /// Timers waiting to run.
    package var count: Int { self.heap.count }

    /// Runs `action` on the loop at `deadline` (on its next turn if that has passed).
    @discardableResult
    package func schedule(at deadline: NIODeadline, _ action: @escaping () -> Void) -> Timer {
        let timer = Timer(deadline: deadline, sequence: self.nextSequence, action: action)
        self.nextSequence &+= 1
        self.insert(timer)
        if deadline < self.armedDeadline {
            self.arm(at: deadline)
        }
        return timer
    }

    /// Runs `action` on the loop `delay` from now.
    @discardableResult
    package func schedule(in delay: TimeAmount, _ action: @escaping () -> Void) -> Timer {
        self.schedule(at: self.loop.now + delay, action)
    }

    /// Cancels `timer`: its action never runs. `false` if it had already run or been cancelled.
    @discardableResult
    package func cancel(_ timer: Timer) -> Bool {
        guard let index = timer.index else { return false }
        self.remove(at: index)
        // SwiftNIO's callback stays armed: if it fires before the next timer is due, it re-arms.
        return true
    }

    /// How many times SwiftNIO has called back: about one per due timer (more only when a
    /// cancelled earliest timer leaves a callback to fire early).
    package private(set) var wakeups = 0

    private func wokeUp(_ generation: UInt64) {
        self.wakeups += 1
        if generation == self.generation {
            self.armed = nil
            self.armedDeadline = .distantFuture
        }
        let now = self.loop.now
        // Timers that actions schedule now run on a later turn, even with a deadline of now.
        let scheduledBefore = self.nextSequence
        while let first = self.heap.first, first.deadline <= now, first.sequence < scheduledBefore {
            let action = first.action
            self.remove(at: 0)
            action?()
        }
        if let first = self.heap.first, first.deadline < self.armedDeadline {
            self.arm(at: first.deadline)
        }
    }

    /// The current callback was cancelled, and not by ``arm(at:)``: the loop is shutting down.
    /// Nothing will run on it again, so the pending actions (and what they hold) are let go.
    private func wakeupCancelled(_ generation: UInt64) {
        guard generation == self.generation, self.armed != nil else { return }
        self.armed = nil
        self.armedDeadline = .distantFuture
        for timer in self.heap {
            timer.index = nil
            timer.action = nil
        }
        self.heap = []
    }

    private func arm(at deadline: NIODeadline) {
        let replaced = self.armed
        let wakeup = Wakeup(queue: self, generation: self.generation &+ 1)
        guard let callback = try? self.loop.assumeIsolated().scheduleCallback(at: deadline, handler: wakeup) else {
            return  // the loop is shutting down: the callback armed before (if any) stays
        }
        self.generation = wakeup.generation
        self.armed = callback
        self.armedDeadline = deadline
        replaced?.cancel()
    }

    // MARK: The heap

    private func insert(_ timer: Timer) {
        timer.index = self.heap.count
        self.heap.append(timer)
        self.siftUp(self.heap.count - 1)
    }

    /// Takes the timer at `index` out of the heap, and lets go of its action (and what it holds).
    private func remove(at index: Int) {
        let removed = self.heap[index]
        removed.index = nil
        removed.action = nil
        let last = self.heap.removeLast()
        guard index < self.heap.count else { return }
        self.heap[index] = last
        last.index = index
        if index > 0 && last.runsBefore(self.heap[(index - 1) / 2]) {
            self.siftUp(index)
        } else {
            self.siftDown(index)
        }
    }

    private func siftUp(_ start: Int) {
        var index = start
        let timer = self.heap[index]
        while index > 0 {
            let parent = (index - 1) / 2
            guard timer.runsBefore(self.heap[parent]) else { break }
            self.place(self.heap[parent], at: index)
            index = parent
        }
        self.place(timer, at: index)
    }

    private func siftDown(_ start: Int) {
        var index = start
        let timer = self.heap[index]
        let count = self.heap.count
        while true {
            let left = 2 * index + 1
            guard left < count else { break }
            let right = left + 1
            let child = right < count && self.heap[right].runsBefore(self.heap[left]) ? right : left
            guard self.heap[child].runsBefore(timer) else { break }
            self.place(self.heap[child], at: index)
            index = child
        }
        self.place(timer, at: index)
    }

    private func place(_ timer: Timer, at index: Int) {
        self.heap[index] = timer
        timer.index = index
    }
}
