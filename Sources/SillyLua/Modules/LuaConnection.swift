import CLua
import CLuaShim
import NIOCore
import Silly

/// A connection as a script sees it — `conn:read`, `conn:write`, `conn.remoteaddr` — over the
/// core's callback-level API: the same engine, receive buffer and write batching as the async
/// Swift API, no second copy of the per-message path.
///
/// The per-message path, top to bottom: `conn:read("\n")` calls ``read(_:)``, which asks the
/// engine (`tryRead`). A line already buffered is pushed as a Lua string and returned, no yield.
/// Otherwise the task yields; when the engine has the line it calls ``readCompleted(_:)`` from
/// `channelRead`, and the runtime resumes the task with it right there. `conn:write` queues the
/// bytes in the channel; the engine flushes once per batch of socket events (at once past
/// 64 KiB unflushed).
///
/// In Lua a connection is a table `{ remoteaddr = "IP:port", [1] = handle }` whose metatable
/// holds the methods, so scripts may add fields of their own; the handle is a userdata that
/// keeps this object alive and closes a connection the script dropped without closing it.
final class LuaConnection: TCPReadHandler {
    let connection: TCPConnection
    unowned let runtime: LuaRuntime
    /// The task waiting for a read.
    @exclusivity(unchecked) private var reader: LuaTask?
    /// The longest line `conn:read(delimiter)` waits for: the connection's receive limit, which
    /// a script raises with `conn:limit(n)` when it expects longer lines (`nil`: no limit).
    private var lineLimit: Int?

    init(connection: TCPConnection, runtime: LuaRuntime) {
        self.connection = connection
        self.runtime = runtime
        self.lineLimit = runtime.connectionOptions.receiveLimit
    }

    static let metatable = "silly.conn"
    static let handleMetatable = "silly.conn.handle"

    /// Pushes the script's object for `connection`.
    static func push(_ connection: LuaConnection, on stack: LuaStack) {
        stack.pushObject(
            connection, handleMetatable: Self.handleMetatable, metatable: Self.metatable,
            fields: ["remoteaddr": connection.connection.remoteAddress?.description ?? "?"]
        )
    }

    /// The connection whose object is argument 1 (the method's `self`).
    static func this(_ stack: LuaStack) -> LuaConnection? {
        let state = stack.state
        guard stack.type(at: 1) == LUA_TTABLE else { return nil }
        var handle: UnsafeMutableRawPointer?
        if lua_rawgeti(state, 1, 1) == LUA_TUSERDATA, lua_getmetatable(state, -1) != 0 {
            if lua_topointer(state, -1) == LuaRuntime.of(state).connectionHandleMetatable {
                handle = lua_touserdata(state, -2)
            }
            stack.pop()
        }
        stack.pop()
        guard let object = handle?.load(as: UnsafeMutableRawPointer?.self) else { return nil }
        return Unmanaged<LuaConnection>.fromOpaque(object).takeUnretainedValue()
    }

    // MARK: Methods

    static let methods: KeyValuePairs<String, silly_host_function> = [
        "read": { method($0!, "read") { $0.read($1) } },
        "readline": { method($0!, "readline") { $0.readLine($1) } },
        "write": { method($0!, "write") { $0.write($1) } },
        "close": { method($0!, "close") { $0.close($1) } },
        "unreadbytes": { method($0!, "unreadbytes") { $1.push($0.connection.unreadBytesOnLoop); return 1 } },
        "unsentbytes": { method($0!, "unsentbytes") { $1.push($0.connection.unsentBytesOnLoop); return 1 } },
        "isalive": { method($0!, "isalive") { $1.push($0.isAlive); return 1 } },
        "limit": { method($0!, "limit") { $0.limit($1) } },
    ]

    /// `conn:isalive()`, as in the C Silly: false once either side has closed, the peer's end
    /// of stream included (its bytes still buffered can be read). A loop such as
    /// `while conn:isalive() do time.sleep(100) end` then ends when the client leaves.
    private var isAlive: Bool {
        self.connection.isAliveOnLoop && !self.connection.peerEndedOnLoop
    }

    private static func method(_ state: OpaquePointer, _ name: String, _ body: (LuaConnection, LuaStack) -> Int32) -> Int32 {
        let stack = LuaStack(state)
        guard let connection = Self.this(stack) else {
            return stack.raise("bad self to '\(name)' (connection expected; call it as conn:\(name)(...))")
        }
        return body(connection, stack)
    }

    /// `conn:read(delimiter or count [, timeout-ms])`: the data, or `nil, error`. `name` is the
    /// method's name in argument errors.
    private func read(_ stack: LuaStack, as name: String = "read") -> Int32 {
        var timeout: TimeAmount?
        if !stack.isNone(at: 3) {
            guard let milliseconds = stack.milliseconds(at: 3) else {
                return stack.argumentError(2, name, "timeout in milliseconds expected")
            }
            timeout = milliseconds
        }
        guard let task = self.runtime.canWait(stack.state) else { return stack.raise(LuaRuntime.cannotWait) }
        let result: Result<ByteBuffer, SillyError>?
        switch stack.type(at: 2) {
        case LUA_TSTRING:
            guard let delimiter = stack.bytes(at: 2).flatMap(Delimiter.init) else {
                return stack.argumentError(1, name, "delimiter must not be empty")
            }
            result = self.connection.tryRead(
                until: delimiter, maxLength: self.lineLimit ?? Int(Int32.max), timeout: timeout, notifying: self)
        case LUA_TNUMBER:
            guard let count = stack.integer(at: 2), count >= 0 else {
                return stack.argumentError(1, name, "byte count must be a non-negative integer")
            }
            result = self.connection.tryRead(count: Int(count), timeout: timeout, notifying: self)
        default:
            return stack.argumentError(1, name, "delimiter string or byte count expected")
        }
        guard let result else {
            task.isWaiting = true
            self.reader = task
            return SILLY_HOST_YIELD
        }
        switch result {
        case .success(let data):
            stack.push(data)
            return 1
        case .failure(let error):
            stack.pushNil()
            stack.push(error.description)
            return 2
        }
    }

    /// `conn:readline([delimiter [, timeout-ms]])`: later Silly's name for a delimited read,
    /// `"\n"` by default.
    private func readLine(_ stack: LuaStack) -> Int32 {
        switch stack.type(at: 2) {
        case LUA_TSTRING:
            break
        case LUA_TNONE, LUA_TNIL:
            lua_settop(stack.state, max(stack.top, 2))
            stack.push("\n")
            lua_copy(stack.state, -1, 2)
            stack.pop()
        default:
            return stack.argumentError(1, "readline", "delimiter string expected")
        }
        return self.read(stack, as: "readline")
    }

    func readCompleted(_ result: Result<ByteBuffer, SillyError>) {
        guard let task = self.reader else { return }
        self.reader = nil
        self.runtime.resume(task, with: .read(result))
    }

    /// `conn:write(data)`, data a string or an array of strings: `true`, or `false, error`.
    private func write(_ stack: LuaStack) -> Int32 {
        do throws(SillyError) {
            switch stack.type(at: 2) {
            case LUA_TSTRING, LUA_TNUMBER:
                try self.connection.writeOnLoop(bytes: stack.bytes(at: 2)!)
            case LUA_TTABLE:
                let count = lua_rawlen(stack.state, 2)
                var buffer = ByteBuffer()
                for index in 1..<(lua_Integer(count) + 1) {
                    let type = lua_rawgeti(stack.state, 2, index)
                    guard type == LUA_TSTRING || type == LUA_TNUMBER, let bytes = stack.bytes(at: -1) else {
                        stack.pop()
                        return stack.argumentError(1, "write", "element \(index) is not a string")
                    }
                    buffer.writeBytes(bytes)
                    stack.pop()
                }
                try self.connection.writeOnLoop(buffer)
            default:
                return stack.argumentError(1, "write", "string or array of strings expected")
            }
        } catch {
            stack.push(false)
            stack.push(error.description)
            return 2
        }
        stack.push(true)
        return 1
    }

    /// `conn:close()`: `true`, as in Silly; a read waiting in another task returns
    /// `nil, "active closed"`. Closed already (here, or by the runtime when its handler ended):
    /// `false, "active closed"`, what a write would answer.
    private func close(_ stack: LuaStack) -> Int32 {
        guard self.runtime.close(self) else {
            stack.push(false)
            stack.push(SillyError.activeClosed.description)
            return 2
        }
        stack.push(true)
        return 1
    }

    /// `conn:limit(bytes)`: stop reading from the socket while this many bytes wait unread, and
    /// let a line be that long; `conn:limit()` or `conn:limit(nil)` removes the limit.
    private func limit(_ stack: LuaStack) -> Int32 {
        if stack.isNone(at: 2) {
            self.lineLimit = nil
            self.connection.setReceiveLimitOnLoop(nil)
            return 0
        }
        guard let bytes = stack.integer(at: 2), bytes > 0 else {
            return stack.argumentError(1, "limit", "positive byte count expected")
        }
        self.lineLimit = Int(bytes)
        self.connection.setReceiveLimitOnLoop(Int(bytes))
        return 0
    }

    // MARK: Collection

    /// The handle's `__gc`: releases this object; a connection the script dropped while open
    /// is closed, so no descriptor leaks.
    static let collect: silly_host_function = { state in
        let state = state!
        guard let handle = luaL_testudata(state, 1, LuaConnection.handleMetatable),
            let object = handle.load(as: UnsafeMutableRawPointer?.self)
        else { return 0 }
        handle.storeBytes(of: nil, as: UnsafeMutableRawPointer?.self)
        let connection = Unmanaged<LuaConnection>.fromOpaque(object).takeRetainedValue()
        connection.runtime.collected(connection)
        return 0
    }
}
