import CLua
import CLuaShim

/// Registers the modules in `package.loaded`, so `require "silly.net.tcp"` finds them, and the
/// metatables of the objects they return.
enum Modules {
    static func register(in runtime: LuaRuntime) {
        let stack = LuaStack(runtime.state)
        Self.metatable(stack, LuaConnection.metatable, methods: LuaConnection.methods)
        Self.metatable(stack, LuaConnection.handleMetatable, collect: LuaConnection.collect)
        lua_getfield(runtime.state, LuaStack.registry, LuaConnection.handleMetatable)
        runtime.connectionHandleMetatable = lua_topointer(runtime.state, -1)
        stack.pop()
        Self.metatable(stack, LuaListener.metatable, methods: LuaListener.methods)
        Self.metatable(stack, LuaListener.handleMetatable, collect: LuaListener.collect)

        lua_getfield(runtime.state, LuaStack.registry, LUA_LOADED_TABLE)
        let modules: [(String, KeyValuePairs<String, silly_host_function>)] = [
            ("silly", SillyModule.functions),
            ("silly.task", TaskModule.functions),
            ("silly.time", TimeModule.functions),
            ("silly.crypto.utils", CryptoModule.functions),
            ("silly.net.tcp", TCPModule.functions),
        ]
        for (name, functions) in modules {
            stack.pushTable(of: functions)
            stack.setField(-2, name)
        }
        stack.pop()

        // `os.exit` ends the process as `silly.exit` does, sending what was written first.
        if lua_getglobal(runtime.state, "os") == LUA_TTABLE {
            silly_pushhostfunction(runtime.state, SillyModule.osExit)
            stack.setField(-2, "exit")
        }
        stack.pop()
        // A child started by `os.execute` or `io.popen` must not inherit the runtime's sockets.
        silly_guard_child_processes(runtime.state)
    }

    private static func metatable(
        _ stack: LuaStack,
        _ name: String,
        methods: KeyValuePairs<String, silly_host_function>? = nil,
        collect: silly_host_function? = nil
    ) {
        luaL_newmetatable(stack.state, name)
        if let methods {
            stack.pushTable(of: methods)
            stack.setField(-2, "__index")
        }
        if let collect {
            silly_pushhostfunction(stack.state, collect)
            stack.setField(-2, "__gc")
        }
        stack.pop()
    }
}
