import CLua
import CLuaShim

/// `silly`: `exit([code])` ends the process at once, with `code` (0 by default).
enum SillyModule {
    static let functions: KeyValuePairs<String, silly_host_function> = [
        "exit": { state in
            let stack = LuaStack(state!)
            let code = stack.isNone(at: 1) ? 0 : stack.integer(at: 1)
            guard let code else { return stack.argumentError(1, "exit", "integer exit code expected") }
            return Self.exit(stack, code: code)
        }
    ]

    /// Lua's `os.exit([code [, close]])`, made `silly.exit`: the stock one calls C's `exit` at
    /// once, and what the script wrote but the loop had not yet sent was lost. `code` is an
    /// integer or a boolean (`true`: 0, `false`: 1), as for the stock one; `close` changes nothing
    /// (the state is not closed either way).
    static let osExit: silly_host_function = { state in
        let stack = LuaStack(state!)
        let code: Int64?
        if stack.isNone(at: 1) {
            code = 0
        } else if stack.type(at: 1) == LUA_TBOOLEAN {
            code = lua_toboolean(stack.state, 1) != 0 ? 0 : 1
        } else {
            code = stack.integer(at: 1)
        }
        guard let code else { return stack.argumentError(1, "exit", "integer or boolean exit code expected") }
        return Self.exit(stack, code: code)
    }

    /// Ends the runtime with `code` once what was written has been sent (``LuaRuntime/exit(_:)``).
    private static func exit(_ stack: LuaStack, code: Int64) -> Int32 {
        let runtime = LuaRuntime.of(stack.state)
        runtime.exit(Int32(truncatingIfNeeded: code))
        // Nothing after the exit runs: its task never resumes. Where it cannot yield, an error
        // unwinds it, which a `pcall` could catch: so every further instruction of this
        // coroutine and of its task raises it again (the runtime has stopped and reports nothing).
        guard let task = runtime.canWait(stack.state) else {
            silly_halt(stack.state)
            if let task = runtime.current { silly_halt(task.thread) }
            return stack.raise("silly.exit")
        }
        task.isWaiting = true
        return SILLY_HOST_YIELD
    }
}
