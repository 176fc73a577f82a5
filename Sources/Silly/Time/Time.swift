import NIOCore
import NIOPosix
import Synchronization

/// The tutorial's `silly.time`. For `time.sleep`, use `Task.sleep(for:)`.
public enum Time {
    /// A callback scheduled by ``Time/after(_:on:_:)``, until it fires or is cancelled.
    public final class Timer: Sendable {
        private enum Phase: UInt8 { case pending, fired, cancelled }
        private let phase = Atomic<UInt8>(Phase.pending.rawValue)
        private let scheduled = Mutex<Scheduled<Void>?>(nil)

        fileprivate init() {}

        fileprivate func schedule(on loop: any EventLoop, after delay: Duration, _ body: @escaping @Sendable () async -> Void) {
            let task = loop.scheduleTask(in: TimeAmount(delay)) { [self] in
                guard self.claim(.fired) else { return }
                Task(executorPreference: EventLoopExecutor.for(loop)) { await body() }
            }
            self.scheduled.withLock { $0 = task }
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
            self.scheduled.withLock { $0?.cancel(); $0 = nil }
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
        let timer = Timer()
        timer.schedule(on: loop, after: delay, body)
        return timer
    }

    /// Cancels `timer`; `true` if it had not fired. The tutorial's `time.cancel`.
    @discardableResult
    public static func cancel(_ timer: Timer) -> Bool {
        timer.cancel()
    }
}
