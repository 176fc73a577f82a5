import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A program the tests start, with `posix_spawn`.
///
/// Not Foundation's `Process`: on Linux its `run()` scans `/proc/self/fd` with a read past the end
/// of glibc's directory buffer and crashes now and then — the more descriptors the test process
/// holds, the likelier (swift-corelibs-foundation#5472; it crashed a CI run of this suite). Here
/// the child closes every descriptor above 2 itself (`closefrom`), so nothing needs scanning.
public final class ChildProcess: Sendable {
    /// What one of the child's standard streams is connected to.
    public enum Stream: Sendable {
        /// `/dev/null`.
        case null
        /// A pipe whose other end the parent gets (``standardInput``, ``standardOutput``,
        /// ``standardError``).
        case pipe
        /// Standard error only: wherever standard output goes, so the two interleave in the
        /// order written, as on a terminal.
        case output
    }

    /// The child's process ID.
    public let processIdentifier: Int32
    /// The write end of the child's standard input, if it is a pipe.
    public let standardInput: FileHandle?
    /// The read end of the child's standard output, if it is a pipe.
    public let standardOutput: FileHandle?
    /// The read end of the child's standard error, if it is a pipe.
    public let standardError: FileHandle?
    /// The raw `waitpid` status, once the child has been reaped.
    private let waitStatus = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments` and this process's environment.
    public init(_ executable: String, _ arguments: [String], input: Stream = .null, output: Stream = .null, error: Stream = .null) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }

        var childEnds: [Int32] = []
        defer { for descriptor in childEnds { close(descriptor) } }
        /// Connects the child's `target` descriptor; returns the parent's end of a pipe.
        func connect(_ stream: Stream, to target: Int32, childReads: Bool) throws -> FileHandle? {
            switch stream {
            case .null:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", childReads ? O_RDONLY : O_WRONLY, 0)
                return nil
            case .pipe:
                var ends: [Int32] = [0, 0]
                guard pipe(&ends) == 0 else { throw SpawnError("pipe: errno \(errno)") }
                for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
                let (child, parent) = childReads ? (ends[0], ends[1]) : (ends[1], ends[0])
                childEnds.append(child)
                posix_spawn_file_actions_adddup2(&actions, child, target)
                return FileHandle(fileDescriptor: parent, closeOnDealloc: true)
            case .output:
                precondition(target == 2, "only standard error can go where standard output does")
                posix_spawn_file_actions_adddup2(&actions, 1, target)
                return nil
            }
        }
        self.standardInput = try connect(input, to: 0, childReads: true)
        self.standardOutput = try connect(output, to: 1, childReads: false)
        self.standardError = try connect(error, to: 2, childReads: false)
        _ = Self.addCloseFrom?(&actions, 3)

        // The child starts with no signal blocked and every signal at its default action, as
        // from a shell: the test process's threads block or handle some (SIGTERM, SIGINT).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else { throw SpawnError("cannot start \(executable): errno \(result)") }
        self.processIdentifier = pid
    }

    /// Whether the child has not exited yet.
    public var isRunning: Bool { self.reap(waiting: false) == nil }

    /// Waits until the child exits.
    public func waitUntilExit() {
        _ = self.reap(waiting: true)
    }

    /// The exit code, or the number of the signal that ended the child (as Foundation reports
    /// it). Only meaningful once ``isRunning`` is false.
    public var terminationStatus: Int32 {
        guard let status = self.reap(waiting: false) else { return -1 }
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : status & 0x7F
    }

    /// Sends SIGTERM, if the child still runs.
    public func terminate() {
        if self.isRunning { kill(self.processIdentifier, SIGTERM) }
    }

    private func reap(waiting: Bool) -> Int32? {
        self.waitStatus.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            var result: pid_t
            repeat {
                result = waitpid(self.processIdentifier, &raw, waiting ? 0 : WNOHANG)
            } while result == -1 && errno == EINTR
            if result == self.processIdentifier { status = raw }
            return status
        }
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which Swift's Glibc
    /// module does not declare: it is a GNU extension.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
