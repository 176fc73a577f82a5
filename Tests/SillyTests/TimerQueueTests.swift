import NIOCore
import NIOEmbedded
import NIOPosix
import Silly
import SillyTestSupport
import Testing

/// The loop's timer heap, on an `EmbeddedEventLoop`: its clock moves only when the test moves it.
@Suite("TimerQueue: deadline order, O(log n) cancel, actions that schedule and cancel")
struct TimerQueueTests {
    @Test("timers run in deadline order, equal deadlines in the order they were scheduled, each when due")
    func order() {
        let loop = EmbeddedEventLoop()
        let queue = TimerQueue(loop: loop)
        var ran: [String] = []
        queue.schedule(in: .milliseconds(30)) { ran.append("c") }
        queue.schedule(in: .milliseconds(10)) { ran.append("a1") }
        queue.schedule(in: .milliseconds(20)) { ran.append("b") }
        queue.schedule(in: .milliseconds(10)) { ran.append("a2") }
        loop.advanceTime(by: .milliseconds(9))
        #expect(ran == [])
        loop.advanceTime(by: .milliseconds(1))
        #expect(ran == ["a1", "a2"])
        loop.advanceTime(by: .milliseconds(20))
        #expect(ran == ["a1", "a2", "b", "c"])
        #expect(queue.count == 0)
    }

    @Test("a cancelled timer never runs; cancel says whether it was still pending")
    func cancel() {
        let loop = EmbeddedEventLoop()
        let queue = TimerQueue(loop: loop)
        var ran: [Int] = []
        let first = queue.schedule(in: .milliseconds(10)) { ran.append(1) }
        let second = queue.schedule(in: .milliseconds(20)) { ran.append(2) }
        #expect(queue.cancel(first))
        #expect(!queue.cancel(first))
        #expect(!first.isPending && second.isPending)
        // SwiftNIO's callback, armed for the cancelled first timer, fires early and re-arms.
        loop.advanceTime(by: .milliseconds(10))
        #expect(ran == [])
        loop.advanceTime(by: .milliseconds(10))
        #expect(ran == [2])
        #expect(!queue.cancel(second))
    }

    @Test("an earlier timer scheduled after a later one still runs first, on time")
    func earlierLater() {
        let loop = EmbeddedEventLoop()
        let queue = TimerQueue(loop: loop)
        var ran: [String] = []
        queue.schedule(in: .seconds(10)) { ran.append("late") }
        queue.schedule(in: .milliseconds(5)) { ran.append("early") }
        loop.advanceTime(by: .milliseconds(5))
        #expect(ran == ["early"])
        loop.advanceTime(by: .seconds(10))
        #expect(ran == ["early", "late"])
    }

    @Test("an action may cancel a due timer and schedule new ones; one it schedules for now runs after it")
    func reentrant() {
        let loop = EmbeddedEventLoop()
        let queue = TimerQueue(loop: loop)
        var ran: [String] = []
        var victim: TimerQueue.Timer?
        queue.schedule(in: .milliseconds(10)) {
            ran.append("first")
            #expect(queue.cancel(victim!))
            queue.schedule(in: .zero) { ran.append("scheduled by first") }
        }
        victim = queue.schedule(in: .milliseconds(10)) { ran.append("victim") }
        loop.advanceTime(by: .milliseconds(10))
        #expect(ran == ["first", "scheduled by first"])
        #expect(queue.count == 0)
    }

    @Test("thousands of random schedules, cancels and clock moves match a sorted-list model", arguments: [1, 2, 3])
    func againstModel(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        let loop = EmbeddedEventLoop()
        let queue = TimerQueue(loop: loop)
        let start = loop.now
        var ran: [Int] = []
        // The model: pending timers as (deadline, id), ids in scheduling order.
        var model: [(deadline: NIODeadline, id: Int)] = []
        var handles: [Int: TimerQueue.Timer] = [:]
        var expected: [Int] = []
        var nextID = 0
        for _ in 0..<5_000 {
            switch random.next() % 10 {
            case 0..<5:
                let id = nextID
                nextID += 1
                let deadline = loop.now + .milliseconds(Int64(random.next() % 200))
                handles[id] = queue.schedule(at: deadline) { ran.append(id) }
                model.append((deadline, id))
            case 5..<8:
                guard !model.isEmpty else { continue }
                let victim = model.remove(at: Int(random.next() % UInt64(model.count)))
                #expect(queue.cancel(handles[victim.id]!))
            default:
                let now = loop.now + .milliseconds(Int64(random.next() % 50))
                let due = model.filter { $0.deadline <= now }
                    .sorted { $0.deadline != $1.deadline ? $0.deadline < $1.deadline : $0.id < $1.id }
                expected += due.map(\.id)
                model.removeAll { $0.deadline <= now }
                loop.advanceTime(to: now)
                #expect(ran == expected, "after \(loop.now - start)")
            }
            #expect(queue.count == model.count)
        }
        loop.advanceTime(by: .seconds(1))
        expected += model.sorted { $0.deadline != $1.deadline ? $0.deadline < $1.deadline : $0.id < $1.id }.map(\.id)
        #expect(ran == expected)
        #expect(queue.count == 0)
    }

    @Test("a callback replaced after SwiftNIO took it out of its heap (due in the same batch) does not keep waking the loop")
    func staleCallbacks() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.shutdownGracefully { _ in } }
        let loop = group.next()
        nonisolated(unsafe) let queue = TimerQueue(loop: loop)  // used on the loop only
        // A timer that re-arms itself every 2 ms (a periodic check), counting its ticks and the
        // loop's wakeups over its last 20 ticks.
        let measured = try await loop.submit {
            let promise = loop.makePromise(of: Int.self)
            var ticks = 0
            var wakeupsAtStart = 0
            func tick() {
                queue.schedule(in: .milliseconds(2)) {
                    ticks += 1
                    if ticks == 100 { wakeupsAtStart = queue.wakeups }
                    if ticks == 120 { return promise.succeed(queue.wakeups - wakeupsAtStart) }
                    tick()
                }
            }
            tick()
            return promise.futureResult
        }.get()
        for _ in 0..<5 {
            try await loop.submit {
                // A task queued now arms for a timer earlier than the tick's; the loop is kept
                // busy until both are due, so SwiftNIO runs both callbacks in one batch.
                let early = loop.now + .milliseconds(1)
                loop.execute { queue.schedule(at: early) {} }
                _ = usleep(5_000)
            }.get()
        }
        let wakeups = try await measured.get()
        // One per tick (and at most two per queued task, had they come this late); each replaced
        // callback that stayed alive would add one per tick more (80 in all, before the fix).
        #expect(wakeups <= 20 + 2 * 5, "\(wakeups) wakeups for 20 ticks")
    }

    @Test("a timer pending when its loop shuts down lets go of its action and what it holds")
    func releasedAtShutdown() async throws {
        final class Canary: Sendable {}
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        weak var weakCanary: Canary?
        do {
            let canary = Canary()
            weakCanary = canary
            _ = Time.after(.seconds(3600), on: loop) { _ = canary }
        }
        try await loop.submit {}.get()  // the timer is in the loop's queue
        #expect(weakCanary != nil)
        try await group.shutdownGracefully()
        #expect(weakCanary == nil)
    }

    @Test("Time.after keeps its loop's clock: on a test loop it fires when the test moves time past it")
    func timeAfterOnTestClock() {
        let loop = EmbeddedEventLoop()
        let timer = Time.after(.milliseconds(10), on: loop) {}
        loop.advanceTime(by: .milliseconds(9))
        #expect(!timer.hasFired)
        loop.advanceTime(by: .milliseconds(1))
        #expect(timer.hasFired)
    }
}
