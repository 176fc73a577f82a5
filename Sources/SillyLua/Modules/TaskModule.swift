import CLua
import CLuaShim

/// `silly.task`: `fork(fn)` runs `fn` in a task of its own, once the caller yields.
enum TaskModule {
    static let functions: KeyValuePairs<String, silly_host_function> = [
        "fork": { fork(LuaStack($0!)) },
    ]

    private static func fork(_ stack: LuaStack) -> Int32 {
        guard stack.type(at: 1) == LUA_TFUNCTION else {
            return stack.argumentError(1, "fork", "function expected")
        }
        let runtime = LuaRuntime.of(stack.state)
        lua_pushvalue(stack.state, 1)
        let function = stack.anchor()
        runtime.spawn(function) { _ in 0 }
        stack.release(function)
        return 0
    }
}

