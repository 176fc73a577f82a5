import CLua
import NIOCore
import Silly

/// A Lua coroutine the runtime drives: the main chunk, an `accept` handler, a forked task, a
/// timer's callback. It runs until it calls something that must wait (a read, a sleep, a
/// connect), which yields it; the runtime resumes it when that is decided.
final class LuaTask {
    /// The coroutine.
    let thread: OpaquePointer
    /// Its anchor in the registry: a suspended coroutine is reachable from nothing else.
    let anchor: Int32
    /// The connection an `accept` handler serves: closed when the task ends, however it ends.
    var connection: LuaConnection?
    /// The script's main chunk: an error there ends the process with status 1, as `lua` does.
    var isMain = false
    /// It ended (returned, raised, or was killed by a script's `coroutine.resume`).
    var isFinished = false
    /// Set by the host function that yields: the task waits for the runtime, which will resume it.
    @exclusivity(unchecked) var isWaiting = false

    init(thread: OpaquePointer, anchor: Int32) {
        self.thread = thread
        self.anchor = anchor
    }
}

/// What a task is resumed with: the outcome it waited for, pushed onto its stack as the results
/// of the call that yielded.
enum Wakeup {
    /// A new task: its function and `arguments` values are on its stack.
    case start(arguments: Int32)
    /// A read decided.
    case read(Result<ByteBuffer, SillyError>)
    /// A wait with no result ended: a sleep.
    case waitEnded
    /// A close the task waited for is done: its call returns `true`.
    case closed
    /// The task yielded by itself (`coroutine.yield()` in a task): it runs again after the others.
    case yielded
    /// A connect decided.
    case connected(Result<TCPConnection, SillyError>)
}
