import CLuaShim

/// `silly`: `exit([code])` ends the process at once, with `code` (0 by default).
enum SillyModule {
    static let functions: KeyValuePairs<String, silly_host_function> = [
        "exit": { state in
            let stack = LuaStack(state!)
            let code = stack.isNone(at: 1) ? 0 : stack.integer(at: 1)
            guard let code else { return stack.argumentError(1, "exit", "integer exit code expected") }
            let runtime = LuaRuntime.of(stack.state)
            runtime.exit(Int32(truncatingIfNeeded: code))
            // Nothing after `silly.exit()` runs: its task never resumes. Where it cannot yield,
            // an error unwinds it, which a `pcall` could catch: so every further instruction of
            // this coroutine and of its task raises it again (the runtime has stopped and
            // reports nothing).
            guard let task = runtime.canWait(stack.state) else {
                silly_halt(stack.state)
                if let task = runtime.current { silly_halt(task.thread) }
                return stack.raise("silly.exit")
            }
            task.isWaiting = true
            return SILLY_HOST_YIELD
        },
    ]
}
