import CLua
import CLuaShim
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `silly.time`: `sleep(ms)`, `after(ms, fn [, arg])` returning a timer, `cancel(timer)`,
/// `now()` (wall clock) and `monotonic()`, in milliseconds.
enum TimeModule {
    static let functions: KeyValuePairs<String, silly_host_function> = [
        "sleep": { sleep(LuaStack($0!)) },
        "after": { after(LuaStack($0!)) },
        "cancel": { cancel(LuaStack($0!)) },
        "now": { state in
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            LuaStack(state!).push(now.tv_sec * 1000 + now.tv_nsec / 1_000_000)
            return 1
        },
        "monotonic": { state in
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            LuaStack(state!).push(now.tv_sec * 1000 + now.tv_nsec / 1_000_000)
            return 1
        },
    ]

    private static func sleep(_ stack: LuaStack) -> Int32 {
        guard let delay = stack.milliseconds(at: 1) else {
            return stack.argumentError(1, "sleep", "milliseconds expected")
        }
        let runtime = LuaRuntime.of(stack.state)
        guard let task = runtime.canWait(stack.state) else { return stack.raise(LuaRuntime.cannotWait) }
        runtime.sleep(task, for: delay)
        return SILLY_HOST_YIELD
    }

    private static func after(_ stack: LuaStack) -> Int32 {
        guard let delay = stack.milliseconds(at: 1) else {
            return stack.argumentError(1, "after", "milliseconds expected")
        }
        guard stack.type(at: 2) == LUA_TFUNCTION else {
            return stack.argumentError(2, "after", "function expected")
        }
        lua_settop(stack.state, 3)  // the argument, nil if none
        let argument = stack.anchor()
        let function = stack.anchor()
        let id = LuaRuntime.of(stack.state).after(delay, function: function, argument: argument)
        stack.push(id)
        return 1
    }

    private static func cancel(_ stack: LuaStack) -> Int32 {
        guard let id = stack.integer(at: 1) else {
            return stack.argumentError(1, "cancel", "timer expected")
        }
        stack.push(LuaRuntime.of(stack.state).cancelTimer(Int(id)))
        return 1
    }
}

