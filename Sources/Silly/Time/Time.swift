import NIOCore
import NIOPosix
import Synchronization

/// The tutorial's `silly.time`. For `time.sleep`, use `Task.sleep(for:)`.
public enum Time {
    /// A callback scheduled by ``Time/after(_:on:_:)``, until it fires or is cancelled.
    public final class Timer: Sendable {
        private enum Phase: UInt8 { case pending, fired, cancelled }
        private let phase = Atomic<UInt8>(Phase.pending.rawValue)
        private let executor: EventLoopExecutor
        /// Its place in the loop's ``TimerQueue``, once scheduled there (on the loop).
        private let entry = Mutex<TimerQueue.Timer?>(nil)

        fileprivate init(on loop: any EventLoop) {
            self.executor = EventLoopExecutor.for(loop)
        }

        fileprivate func schedule(after delay: Duration, _ body: @escaping @Sendable () async -> Void) {
            let deadline = self.executor.eventLoop.now + TimeAmount(saturating: delay)  // the loop's clock: a test loop's is its own
            self.onLoop { [self] in
                guard self.phase.load(ordering: .acquiring) == Phase.pending.rawValue else { return }  // cancelled already
                let entry = self.executor.timers.schedule(at: deadline) { [self] in
                    self.entry.withLock { $0 = nil }
                    guard self.claim(.fired) else { return }
                    Task(executorPreference: self.executor) { await body() }
                }
                self.entry.withLock { $0 = entry }
            }
        }

        private func onLoop(_ work: @escaping @Sendable () -> Void) {
            if self.executor.eventLoop.inEventLoop {
                work()
            } else {
                self.executor.eventLoop.execute(work)
            }
        }

        private func claim(_ phase: Phase) -> Bool {
            self.phase.compareExchange(
                expected: Phase.pending.rawValue, desired: phase.rawValue, ordering: .acquiringAndReleasing
            ).exchanged
        }

        /// Stops the timer. Returns `true` if it had not fired: then it never will.
        @discardableResult
        public func cancel() -> Bool {
            guard self.claim(.cancelled) else { return false }
            self.onLoop { [self] in
                if let entry = self.entry.withLock({ $0.take() }) { self.executor.timers.cancel(entry) }
            }
            return true
        }

        /// Whether the callback was started.
        public var hasFired: Bool { self.phase.load(ordering: .acquiring) == Phase.fired.rawValue }
    }

    /// Runs `body` once, `delay` from now, as a task on `eventLoop` (by default the caller's loop,
    /// or the next of the shared group). The tutorial's `time.after`.
    @discardableResult
    public static func after(
        _ delay: Duration,
        on eventLoop: (any EventLoop)? = nil,
        _ body: @escaping @Sendable () async -> Void
    ) -> Timer {
        let loop = eventLoop ?? MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        let timer = Timer(on: loop)
        timer.schedule(after: delay, body)
        return timer
    }

    /// Cancels `timer`; `true` if it had not fired. The tutorial's `time.cancel`.
    @discardableResult
    public static func cancel(_ timer: Timer) -> Bool {
        timer.cancel()
    }
}
