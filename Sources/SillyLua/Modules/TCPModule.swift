import CLua
import CLuaShim
import Dispatch
import NIOCore
import Silly
import Synchronization

/// `silly.net.tcp`: `listen{addr=, backlog=, accept=}` and `connect(addr [, {bind=, timeout=}])`.
enum TCPModule {
    static let functions: KeyValuePairs<String, silly_host_function> = [
        "listen": { listen(LuaStack($0!)) },
        "connect": { connect(LuaStack($0!)) },
    ]

    /// `tcp.listen{addr = "IP:port", backlog = n, accept = function(conn) ... end}`: the listener,
    /// bound; a bad or busy address raises an error naming it.
    private static func listen(_ stack: LuaStack) -> Int32 {
        let runtime = LuaRuntime.of(stack.state)
        guard stack.type(at: 1) == LUA_TTABLE else {
            return stack.argumentError(1, "listen", "table expected, as tcp.listen{addr = ..., accept = ...}")
        }
        guard stack.rawField(1, "addr") == LUA_TSTRING, let address = stack.string(at: -1) else {
            return stack.raise("tcp.listen: 'addr' must be a string such as \"127.0.0.1:9999\"")
        }
        stack.pop()
        var backlog = 4096
        if stack.rawField(1, "backlog") != LUA_TNIL {
            guard let value = stack.integer(at: -1), value > 0 else {
                return stack.raise("tcp.listen: 'backlog' must be a positive integer")
            }
            backlog = Int(value)
        }
        stack.pop()
        guard stack.rawField(1, "accept") == LUA_TFUNCTION else {
            return stack.raise("tcp.listen: 'accept' must be a function(conn)")
        }
        let accept = AcceptFunction(stack.anchor())
        let loopBound = NIOLoopBound((runtime, accept), eventLoop: runtime.eventLoop)
        let bound = TCP.bind(
            address, backlog: backlog, options: runtime.connectionOptions, group: runtime.eventLoop
        ) { connection in
            let (runtime, accept) = loopBound.value
            runtime.accept(connection, handler: accept)
        }
        // As in the C Silly, `listen` returns bound (or raises) without yielding: it works where a
        // script cannot wait (a `require`d module's body), and a task forked before it cannot
        // connect too early. The socket is bound on the core's acceptor thread, which never
        // waits for this loop: blocking here cannot deadlock. It lasts a few system calls (up
        // to 200 ms while that thread backs off from a process out of descriptors).
        switch Self.waitBlocking(for: bound) {
        case .success(let listener):
            runtime.listening(listener, accept: accept).push(on: stack)
            return 1
        case .failure(let error):
            accept.release(on: stack)
            stack.push(error.description)
            return SILLY_HOST_ERROR
        }
    }

    /// The result of `future`, which completes on another loop than the caller's.
    private static func waitBlocking(for future: EventLoopFuture<TCPListener>) -> Result<TCPListener, SillyError> {
        final class Outcome: Sendable {
            let result = Mutex<Result<TCPListener, SillyError>?>(nil)
            let done = DispatchSemaphore(value: 0)
        }
        let outcome = Outcome()
        future.whenComplete { result in
            outcome.result.withLock { $0 = result.mapError(SillyError.init) }
            outcome.done.signal()
        }
        outcome.done.wait()
        return outcome.result.withLock { $0! }
    }

    /// `tcp.connect(addr [, {bind = "IP:port", timeout = ms}])`: the connection, or `nil, error`.
    private static func connect(_ stack: LuaStack) -> Int32 {
        let runtime = LuaRuntime.of(stack.state)
        guard stack.type(at: 1) == LUA_TSTRING, let address = stack.string(at: 1) else {
            return stack.argumentError(1, "connect", "address string expected")
        }
        var localAddress: String?
        var timeout = Duration.seconds(10)
        switch stack.type(at: 2) {
        case LUA_TNONE, LUA_TNIL:
            break
        case LUA_TTABLE:
            switch stack.rawField(2, "bind") {
            case LUA_TNIL: break
            case LUA_TSTRING: localAddress = stack.string(at: -1)
            default: return stack.raise("tcp.connect: 'bind' must be an address string")
            }
            stack.pop()
            if stack.rawField(2, "timeout") != LUA_TNIL {
                guard let milliseconds = stack.milliseconds(at: -1), milliseconds > .zero else {
                    return stack.raise("tcp.connect: 'timeout' must be a positive number of milliseconds")
                }
                timeout = .nanoseconds(milliseconds.nanoseconds)
            }
            stack.pop()
        default:
            return stack.argumentError(2, "connect", "options table expected")
        }
        guard let task = runtime.canWait(stack.state) else { return stack.raise(LuaRuntime.cannotWait) }
        let connected = TCP.connect(
            address, timeout: timeout, localAddress: localAddress, options: runtime.connectionOptions, on: runtime.eventLoop
        )
        task.isWaiting = true
        connected.assumeIsolated().whenComplete { result in
            runtime.resume(task, with: .connected(result.mapError(SillyError.init)))
        }
        return SILLY_HOST_YIELD
    }
}

extension SillyError {
    /// The futures of the core's callback-level API fail with ``SillyError``s only.
    init(_ error: any Error) {
        self = error as? SillyError ?? .failed("\(error)")
    }
}

/// A listener's anchored `accept` function. Connections reach the runtime's loop through a queue
/// of their own, so one accepted just before the listener closed can arrive after the function
/// was released (its registry slot perhaps reused for something else): it is closed instead.
final class AcceptFunction {
    let reference: Int32
    /// Released with its listener: accepts still on their way are closed.
    private(set) var isReleased = false

    init(_ reference: Int32) {
        self.reference = reference
    }

    /// Drops the function's anchor, once: its listener is closed, or never opened.
    func release(on stack: LuaStack) {
        guard !self.isReleased else { return }
        self.isReleased = true
        stack.release(self.reference)
    }
}

/// A listener as a script sees it: `{ addr = "IP:port", [1] = handle }` with `listener:close()`
/// (`true`, as in Silly, once the listening socket is closed).
/// Dropping it does not close it (the tutorial never keeps its listener); the runtime does.
final class LuaListener {
    let listener: TCPListener
    let accept: AcceptFunction
    /// Set by the script's first `listener:close()`: a second one answers `false, "active closed"`.
    var isClosed = false

    init(listener: TCPListener, accept: AcceptFunction) {
        self.listener = listener
        self.accept = accept
    }

    static let metatable = "silly.listener"
    static let handleMetatable = "silly.listener.handle"

    func push(on stack: LuaStack) {
        stack.pushObject(
            self, handleMetatable: Self.handleMetatable, metatable: Self.metatable,
            fields: ["addr": self.listener.localAddress.description]
        )
    }

    static let methods: KeyValuePairs<String, silly_host_function> = [
        "close": { state in
            let stack = LuaStack(state!)
            guard stack.type(at: 1) == LUA_TTABLE else { return stack.raise("bad self to 'close' (listener expected)") }
            lua_rawgeti(stack.state, 1, 1)
            let handle = luaL_testudata(stack.state, -1, LuaListener.handleMetatable)
            stack.pop()
            guard let object = handle?.load(as: UnsafeMutableRawPointer?.self) else {
                return stack.raise("bad self to 'close' (listener expected)")
            }
            let luaListener = Unmanaged<LuaListener>.fromOpaque(object).takeUnretainedValue()
            guard !luaListener.isClosed else {
                stack.push(false)
                stack.push(SillyError.activeClosed.description)
                return 2
            }
            luaListener.isClosed = true
            let listener = luaListener.listener
            listener.closeNow()
            // The listening socket is closed on the acceptor loop: wait for it, so that a connect
            // made after `close()` returns is refused. (Where the caller cannot wait, it is not.)
            let runtime = LuaRuntime.of(stack.state)
            guard let task = runtime.canWait(stack.state) else {
                stack.push(true)
                return 1
            }
            task.isWaiting = true
            listener.closeFuture.hop(to: runtime.eventLoop).assumeIsolated().whenComplete { _ in
                runtime.resume(task, with: .closed)
            }
            return SILLY_HOST_YIELD
        }
    ]

    static let collect: silly_host_function = { state in
        guard let handle = luaL_testudata(state!, 1, LuaListener.handleMetatable),
            let object = handle.load(as: UnsafeMutableRawPointer?.self)
        else { return 0 }
        handle.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
        Unmanaged<LuaListener>.fromOpaque(object).release()
        return 0
    }
}
