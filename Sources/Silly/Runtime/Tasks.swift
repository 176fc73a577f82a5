import NIOCore
import NIOPosix

/// The tutorial's `silly.task`.
public enum Tasks {
    /// Starts `body` as a task on an event loop: the caller's own loop when it runs on one,
    /// else the next loop of the shared group. Connections it makes or reads then need no hop.
    /// The tutorial's `task.fork`.
    @discardableResult
    public static func fork(
        on eventLoop: (any EventLoop)? = nil,
        _ body: sending @escaping () async -> Void
    ) -> Task<Void, Never> {
        let loop = eventLoop ?? MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
        return Task(executorPreference: EventLoopExecutor.for(loop)) {
            await body()
        }
    }
}
