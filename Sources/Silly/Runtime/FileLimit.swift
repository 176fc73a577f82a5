#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's limit on open files, which caps how many connections it can hold.
public enum FileLimit {
    /// Raises the soft limit to the hard limit. Returns the limits in force afterwards.
    @discardableResult
    public static func raiseToHardLimit() -> (soft: UInt64, hard: UInt64) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                limit = raised
            }
        }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }

    /// The descriptors each SwiftNIO event loop holds: its epoll, wakeup and timer descriptors.
    public static let perEventLoop: UInt64 = 3

    /// Descriptors a server keeps for itself beside its loops and connections: listeners, logs,
    /// the files it opens.
    public static let keptForTheProcess: UInt64 = 64

    /// Why `eventLoops` loops cannot start within the limit of `openFiles` (keeping
    /// ``keptForTheProcess``), or `nil` if they can. SwiftNIO traps when it cannot open a loop's
    /// descriptors, so a program checks this before it makes its loops.
    public static func tooManyEventLoops(_ eventLoops: Int, openFiles: UInt64) -> String? {
        let needed = UInt64(max(eventLoops, 0)).multipliedReportingOverflow(by: Self.perEventLoop)
        guard needed.overflow || needed.partialValue + Self.keptForTheProcess > openFiles else { return nil }
        return "\(eventLoops) event-loop thread(s) need \(Self.perEventLoop) descriptors each, and \(Self.keptForTheProcess) are kept for the process: more than the open-file limit (\(openFiles)) allows"
    }
}
