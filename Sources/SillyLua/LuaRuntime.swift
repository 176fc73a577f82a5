import CLua
import CLuaShim
import NIOCore
import Silly

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The `silly` script runtime: one Lua state, driven from one event loop (a Lua state is not
/// thread-safe, so it is only ever touched on `eventLoop`), a coroutine per connection and per
/// task.
///
/// Every entry from the loop into Lua — data for a waiting read, a timer, a finished connect —
/// resumes a task through ``resume(_:with:)``. A task resumed while another runs (closing a
/// connection wakes its reader) waits in `ready` until the running one yields, so coroutines
/// never nest and Lua's C stack stays flat.
///
/// The process ends when nothing is left that could run Lua again: no task alive or sleeping,
/// no listener open, no timer pending.
public final class LuaRuntime {
    let state: OpaquePointer
    let eventLoop: any EventLoop
    let connectionOptions: ConnectionOptions
    private let exitCode: EventLoopPromise<Int32>

    /// The task running now, if any: the only one whose host calls may yield.
    // The fields every message touches are loop-confined and never accessed overlappingly:
    // no dynamic exclusivity checks on them.
    @exclusivity(unchecked) private(set) var current: LuaTask?
    /// Tasks to resume once the one running yields, in order.
    @exclusivity(unchecked) private var ready = CircularBuffer<(LuaTask, Wakeup)>()
    /// Tasks are being run: a resume now waits in `ready`.
    @exclusivity(unchecked) private var isDispatching = false
    private var liveTasks = 0
    private var stopped = false
    private var terminating = false

    /// The connection handles' metatable, to recognise a handle by pointer (`luaL_testudata`
    /// would look the metatable up by name on every method call).
    var connectionHandleMetatable: UnsafeRawPointer?

    private var listeners: [ObjectIdentifier: LuaListener] = [:]
    private var connections: [ObjectIdentifier: LuaConnection] = [:]
    /// Connections closed by the script whose written bytes are still being sent.
    private var sending: [Int: EventLoopFuture<Void>] = [:]
    private var nextSendingKey = 0
    private var timers: [Int: LuaTimer] = [:]
    private var nextTimerID = 1
    /// The loop's timers: `time.cancel` costs O(log n) there, not a search of every pending timer.
    private let timerQueue: TimerQueue
    /// Yielded tasks, and sleeps and timers of no delay: they run on the loop's coming turns,
    /// which a task yielding in a loop must not keep from its sockets.
    private let soon: FairQueue

    /// The core's defaults, and a receive limit: a handler that stops reading (or never
    /// reads) holds at most 1 MiB of its peer's bytes; then TCP flow control slows the peer.
    /// `conn:limit(n)` changes it per connection.
    public static let defaultConnectionOptions: ConnectionOptions = {
        var options = ConnectionOptions()
        options.receiveLimit = 1 << 20
        return options
    }()

    /// Creates the state, opens the standard libraries and registers the silly modules.
    /// `exitCode` completes with the process's exit status when the runtime is done.
    public init(eventLoop: any EventLoop, connectionOptions: ConnectionOptions = LuaRuntime.defaultConnectionOptions, exitCode: EventLoopPromise<Int32>) {
        self.eventLoop = eventLoop
        self.soon = FairQueue(loop: eventLoop)
        self.timerQueue = EventLoopExecutor.for(eventLoop).timers
        self.connectionOptions = connectionOptions
        self.exitCode = exitCode
        self.state = luaL_newstate()
        luaL_openlibs(self.state)
        // Each message leaves a short-lived string behind: generational collection reclaims
        // them without re-marking every connection's coroutine (measured: about 8% less CPU
        // per message with 1,000 connections).
        silly_gc_generational(self.state)
        // Host functions find the runtime here; every coroutine inherits the pointer.
        silly_extraspace(self.state).pointee = Unmanaged.passUnretained(self).toOpaque()
        Modules.register(in: self)
        self.guardTasks()
    }

    /// The registry key of the weak set of task threads.
    static let tasksKey = "silly.tasks"

    /// A task waits for the runtime alone: `coroutine.resume` and `coroutine.close` refuse a
    /// task's thread (a script can reach it with `coroutine.running()`), as they refuse a
    /// running coroutine.
    private func guardTasks() {
        let guardCode = """
            local tasks, resume, close = ...
            coroutine.resume = function(co, ...)
                if tasks[co] then return false, "cannot resume a silly task" end
                return resume(co, ...)
            end
            coroutine.close = function(co)
                if tasks[co] then return false, "cannot close a silly task" end
                return close(co)
            end
            """
        let stack = LuaStack(self.state)
        lua_createtable(self.state, 0, 0)
        lua_createtable(self.state, 0, 1)
        stack.push("k")
        stack.setField(-2, "__mode")
        lua_setmetatable(self.state, -2)
        lua_pushvalue(self.state, -1)
        lua_setfield(self.state, LuaStack.registry, Self.tasksKey)
        let loaded = luaL_loadbufferx(self.state, guardCode, guardCode.utf8.count, "=silly", nil)
        precondition(loaded == LUA_OK, "the runtime's own Lua code does not compile")
        lua_rotate(self.state, -2, 1)  // the chunk below the tasks table
        lua_getglobal(self.state, "coroutine")
        stack.rawField(-1, "resume")
        stack.rawField(-2, "close")
        silly_remove(self.state, -3)  // the coroutine table
        let ran = lua_pcallk(self.state, 3, 0, 0, 0, nil)
        precondition(ran == LUA_OK, "the runtime's own Lua code failed")
    }

    /// The runtime of a host function's state.
    static func of(_ state: OpaquePointer) -> LuaRuntime {
        Unmanaged<LuaRuntime>.fromOpaque(silly_extraspace(state).pointee!).takeUnretainedValue()
    }

    // MARK: Starting

    /// Loads `script` and runs it as the first task, with `arguments` as its `...` and in Lua's
    /// usual `arg` table. Fails with the loader's message ("cannot open x.lua", a syntax error
    /// with its file and line).
    public func start(script: String, arguments: [String]) throws(ScriptError) {
        let stack = LuaStack(self.state)
        lua_createtable(self.state, Int32(arguments.count), 2)
        stack.push("silly")
        lua_rawseti(self.state, -2, -1)
        stack.push(script)
        lua_rawseti(self.state, -2, 0)
        for (index, argument) in arguments.enumerated() {
            stack.push(argument)
            lua_rawseti(self.state, -2, lua_Integer(index + 1))
        }
        lua_setglobal(self.state, "arg")

        guard luaL_loadfilex(self.state, script, nil) == LUA_OK else {
            let message = stack.describe(at: -1)
            stack.pop()
            throw ScriptError(message: message)
        }
        let task = self.newTask(stack)
        task.isMain = true
        lua_xmove(self.state, task.thread, 1)
        guard lua_checkstack(task.thread, Int32(clamping: arguments.count + 1)) != 0 else {
            throw ScriptError(message: "too many arguments for the script (\(arguments.count))")
        }
        let mainStack = LuaStack(task.thread)
        for argument in arguments { mainStack.push(argument) }
        self.resume(task, with: .start(arguments: Int32(arguments.count)))
    }

    // MARK: Tasks

    /// Makes a coroutine, anchored, and counts it alive. Its function is pushed by the caller.
    func newTask(_ stack: LuaStack) -> LuaTask {
        // Counted first: allocating may run a finalizer, and what it does must not find the
        // runtime idle.
        self.liveTasks += 1
        let thread = lua_newthread(stack.state)!
        lua_getfield(stack.state, LuaStack.registry, Self.tasksKey)
        lua_pushvalue(stack.state, -2)
        stack.push(true)
        lua_rawset(stack.state, -3)
        stack.pop()
        return LuaTask(thread: thread, anchor: stack.anchor())
    }

    /// Starts a task that runs the anchored function `function` with the values `push` leaves on
    /// its stack.
    func spawn(_ function: Int32, connection: LuaConnection? = nil, arguments push: (LuaStack) -> Int32) {
        // Making the task allocates, which may run a script's finalizer: what it resumes waits.
        let wasDispatching = self.isDispatching
        self.isDispatching = true
        let task = self.newTask(LuaStack(self.state))
        task.connection = connection
        let stack = LuaStack(task.thread)
        stack.pushAnchored(function)
        let count = push(stack)
        self.isDispatching = wasDispatching
        self.resume(task, with: .start(arguments: count))
    }

    /// Whether the host function running on `state` may yield: it runs in the current task's
    /// own coroutine (not a coroutine the script made inside it), outside any call that cannot
    /// yield (a metamethod, a `table.sort` comparator).
    func canWait(_ state: OpaquePointer) -> LuaTask? {
        guard let task = self.current, task.thread == state, silly_isyieldable(state) != 0 else { return nil }
        return task
    }

    /// The message for a host call that must wait where it cannot.
    static let cannotWait = "cannot wait here: call it from a silly task (an accept handler, task.fork, a timer), not from a coroutine it made or a metamethod"

    /// Resumes `task` with `wakeup` now or, while tasks are being run, right after them.
    func resume(_ task: LuaTask, with wakeup: Wakeup) {
        guard !self.stopped else { return }
        if self.isDispatching {
            self.ready.append((task, wakeup))
            return
        }
        self.isDispatching = true
        self.run(task, wakeup)
        // What the task woke or forked runs now, before control goes back to the loop.
        while !self.ready.isEmpty && !self.stopped {
            let (next, nextWakeup) = self.ready.removeFirst()
            self.run(next, nextWakeup)
        }
        self.isDispatching = false
        self.exitIfIdle()
    }

    private func run(_ task: LuaTask, _ wakeup: Wakeup) {
        guard !task.isFinished else { return }
        if case .start = wakeup {
        } else if lua_status(task.thread) != LUA_YIELD {
            // Killed while it waited (resumed by a script through the debug library): done.
            self.finish(task)
            return
        }
        self.current = task
        task.isWaiting = false
        var results: Int32 = 0
        let status = self.deliver(wakeup, to: task, results: &results)
        self.current = nil
        switch status {
        case LUA_YIELD:
            if !task.isWaiting {
                // A bare `coroutine.yield(...)`: drop what it yielded; it runs again after the
                // other tasks ready now (a yield loop must not starve the loop's sockets either).
                silly_pop(task.thread, results)
                task.isWaiting = true
                self.soon.add { self.resume(task, with: .yielded) }
            }
        case LUA_OK:
            self.finish(task)
        default:
            if !self.stopped { self.report(task) }
            self.closeVariables(of: task)
            self.finish(task)
            if task.isMain { self.exit(1) }
        }
    }

    /// Pushes the wakeup's results onto the task's stack and resumes it.
    private func deliver(_ wakeup: Wakeup, to task: LuaTask, results: inout Int32) -> Int32 {
        let thread = task.thread
        let stack = LuaStack(thread)
        lua_checkstack(thread, 4)
        switch wakeup {
        case .start(let arguments):
            return lua_resume(thread, nil, arguments, &results)
        case .yielded:
            return lua_resume(thread, nil, 0, &results)
        case .waitEnded:
            return silly_resume(thread, 0, 0, &results)
        case .closed:
            stack.push(true)
            return silly_resume(thread, 1, 1, &results)
        case .read(.success(let data)):
            stack.push(data)
            return silly_resume(thread, 1, 1, &results)
        case .read(.failure(let error)):
            stack.pushNil()
            stack.push(error.description)
            return silly_resume(thread, 2, 2, &results)
        case .connected(.success(let connection)):
            if self.terminating { connection.closeOnLoop() }
            LuaConnection.push(self.adopt(connection), on: stack)
            return silly_resume(thread, 1, 1, &results)
        case .connected(.failure(let error)):
            stack.pushNil()
            stack.push(error.description)
            return silly_resume(thread, 2, 2, &results)
        }
    }

    private func finish(_ task: LuaTask) {
        task.isFinished = true
        if let connection = task.connection {
            task.connection = nil
            self.close(connection)
        }
        LuaStack(self.state).release(task.anchor)
        self.liveTasks -= 1
    }

    /// Unlike a protected call, a coroutine that ends with an error leaves its `<close>`
    /// variables open: closes them, as `coroutine.close` would (the task's thread is discarded
    /// after), and prints an error one of their closing methods raised.
    private func closeVariables(of task: LuaTask) {
        let thread = task.thread
        let stack = LuaStack(self.state)
        self.copyError(of: task)  // to tell a new one from it
        defer { stack.pop() }
        guard silly_closethread(thread) != LUA_OK else { return }
        // The error after closing: the task's, or one a closing method raised.
        lua_xmove(thread, self.state, 1)
        defer { stack.pop() }
        if !self.stopped && lua_rawequal(self.state, -1, -2) == 0 {
            StandardError.write("silly: error closing a <close> variable: \(stack.describe(at: -1))\n")
        }
    }

    /// Pushes a copy of the error a task ended with onto the main state, where it can be
    /// described (a coroutine that died with an error can run nothing more); the error stays
    /// on the task's stack.
    private func copyError(of task: LuaTask) {
        lua_checkstack(task.thread, 2)
        lua_checkstack(self.state, 4)
        lua_pushvalue(task.thread, -1)
        lua_xmove(task.thread, self.state, 1)
    }

    /// Prints a task's error with its traceback, as `lua` does; the other tasks go on.
    private func report(_ task: LuaTask) {
        let stack = LuaStack(self.state)
        self.copyError(of: task)
        let message = stack.describe(at: -1)
        stack.pop()
        silly_traceback(self.state, task.thread, message)
        let text = stack.describe(at: -1)
        stack.pop()
        StandardError.write("silly: \(text)\n")
    }

    // MARK: Connections and listeners

    /// Wraps a connection for the script and tracks it until it is closed.
    func adopt(_ connection: TCPConnection) -> LuaConnection {
        let wrapped = LuaConnection(connection: connection, runtime: self)
        self.connections[ObjectIdentifier(wrapped)] = wrapped
        return wrapped
    }

    /// A connection object was collected: close the connection if the script left it open.
    func collected(_ connection: LuaConnection) {
        if self.connections[ObjectIdentifier(connection)] != nil {
            self.close(connection)
        }
    }

    /// Returns whether the connection was still open.
    @discardableResult
    func close(_ connection: LuaConnection) -> Bool {
        let id = ObjectIdentifier(connection)
        guard self.connections.removeValue(forKey: id) != nil else { return false }
        // Until what was written to it is sent, the process waits for it at exit.
        let sent = connection.connection.closeOnLoop()
        let key = self.nextSendingKey
        self.nextSendingKey += 1
        self.sending[key] = sent
        sent.assumeIsolated().whenComplete { _ in self.sending[key] = nil }
        return true
    }

    /// A listener accepted `connection`: its handler runs in a task of its own.
    func accept(_ connection: TCPConnection, handler: AcceptFunction) {
        guard !self.terminating && !self.stopped && !handler.isReleased else {
            connection.closeOnLoop()
            return
        }
        let wrapped = self.adopt(connection)
        self.spawn(handler.reference, connection: wrapped) { stack in
            LuaConnection.push(wrapped, on: stack)
            return 1
        }
    }

    /// Tracks a listener just bound for the script, until it closes.
    func listening(_ listener: TCPListener, accept: AcceptFunction) -> LuaListener {
        let wrapped = LuaListener(listener: listener, accept: accept)
        self.listeners[ObjectIdentifier(wrapped)] = wrapped
        // Listeners accept on the core's acceptor loop: their futures complete there.
        listener.closeFuture.hop(to: self.eventLoop).assumeIsolated().whenComplete { _ in self.listenerClosed(wrapped) }
        if self.terminating { listener.closeNow() }
        return wrapped
    }

    private func listenerClosed(_ listener: LuaListener) {
        guard self.listeners.removeValue(forKey: ObjectIdentifier(listener)) != nil else { return }
        listener.accept.release(on: LuaStack(self.state))
        self.exitIfIdle()
    }

    // MARK: Timers

    /// Runs the anchored `function` with the anchored `argument` in a new task after `delay`.
    func after(_ delay: TimeAmount, function: Int32, argument: Int32) -> Int {
        let id = self.nextTimerID
        self.nextTimerID += 1
        let fire = {
            guard let timer = self.timers.removeValue(forKey: id) else { return }
            self.spawn(timer.function) { stack in
                stack.pushAnchored(timer.argument)
                return 1
            }
            self.release(timer)
        }
        var scheduled: TimerQueue.Timer?
        if delay > .zero {
            scheduled = self.timerQueue.schedule(in: delay, fire)
        } else {
            self.soon.add(fire)  // cancelled meanwhile, it finds no timer and does nothing
        }
        self.timers[id] = LuaTimer(scheduled: scheduled, function: function, argument: argument)
        return id
    }

    /// Cancels a pending timer; `false` if it already fired or was cancelled.
    func cancelTimer(_ id: Int) -> Bool {
        guard let timer = self.timers.removeValue(forKey: id) else { return false }
        if let scheduled = timer.scheduled { self.timerQueue.cancel(scheduled) }
        self.release(timer)
        return true
    }

    private func release(_ timer: LuaTimer) {
        let stack = LuaStack(self.state)
        stack.release(timer.function)
        stack.release(timer.argument)
    }

    /// Resumes `task` after `delay`.
    func sleep(_ task: LuaTask, for delay: TimeAmount) {
        task.isWaiting = true
        guard delay > .zero else {
            self.soon.add { self.resume(task, with: .waitEnded) }
            return
        }
        self.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.resume(task, with: .waitEnded)
        }
    }

    // MARK: Ending

    private func exitIfIdle() {
        guard !self.stopped, !self.isDispatching else { return }
        if self.liveTasks == 0 && self.listeners.isEmpty && self.timers.isEmpty {
            self.exit(0)
        }
    }

    /// Ends the runtime: nothing more runs, and the process exits with `code` (the script's
    /// `silly.exit`) once what was written to the open connections has been sent (while their
    /// peers keep taking it: see `ConnectionOptions.closeLinger`). It does not wait for their
    /// peers to end their side.
    func exit(_ code: Int32) {
        guard !self.stopped else { return }
        self.stopped = true
        for listener in self.listeners.values { listener.listener.closeNow() }
        let sent = self.connections.values.map { $0.connection.closeOnLoop() } + self.sending.values
        self.connections = [:]
        let exitCode = self.exitCode
        EventLoopFuture.andAllComplete(sent, on: self.eventLoop).whenComplete { _ in
            exitCode.succeed(code)
        }
    }

    /// SIGINT or SIGTERM: stop accepting, close every connection (their handlers see
    /// "active closed" and finish), drop pending timers; exit once the tasks have ended, or after
    /// `grace` if some still run (a sleeping client, say). A second request exits at once.
    public func terminate(grace: TimeAmount = .seconds(2)) {
        guard !self.terminating else {
            self.exit(0)
            return
        }
        self.terminating = true
        for listener in self.listeners.values { listener.listener.closeNow() }
        for connection in self.connections.values { self.close(connection) }
        for id in Array(self.timers.keys) { _ = self.cancelTimer(id) }
        self.eventLoop.assumeIsolated().scheduleTask(in: grace) { self.exit(0) }
        self.exitIfIdle()
    }
}

/// Unbuffered writes to the standard error, for errors the user must see even if the process
/// ends right after.
public enum StandardError {
    public static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }
}

/// A script that cannot be loaded: the message names the file (and line, for a syntax error).
public struct ScriptError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { self.message }
}

/// A pending `time.after`: what it runs, anchored until it fires or is cancelled.
struct LuaTimer {
    /// `nil` for a timer of no delay, which waits in the runtime's `soon` queue instead.
    let scheduled: TimerQueue.Timer?
    let function: Int32
    let argument: Int32
}
