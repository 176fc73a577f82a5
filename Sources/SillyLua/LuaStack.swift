import CLua
import CLuaShim
import NIOCore

/// Typed access to one Lua thread's stack, through calls that never raise: what host functions
/// use to read their arguments and push their results. (A raising call would `longjmp` across
/// Swift frames; errors are returned to the C trampoline instead, see `CLuaShim.h`.)
struct LuaStack {
    let state: OpaquePointer

    init(_ state: OpaquePointer) {
        self.state = state
    }

    static var registry: Int32 { silly_registryindex() }

    // MARK: Reading

    func type(at index: Int32) -> Int32 { lua_type(self.state, index) }

    var top: Int32 { lua_gettop(self.state) }

    /// The bytes of the string (or number, converted) at `index`; valid while the value is on
    /// the stack.
    func bytes(at index: Int32) -> UnsafeRawBufferPointer? {
        var length = 0
        guard let pointer = lua_tolstring(self.state, index, &length) else { return nil }
        return UnsafeRawBufferPointer(start: pointer, count: length)
    }

    func string(at index: Int32) -> String? {
        self.bytes(at: index).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The integer at `index`: a number with an integral value, else `nil`.
    func integer(at index: Int32) -> Int64? {
        var isInteger: Int32 = 0
        let value = lua_tointegerx(self.state, index, &isInteger)
        return isInteger != 0 ? value : nil
    }

    func number(at index: Int32) -> Double? {
        var isNumber: Int32 = 0
        let value = lua_tonumberx(self.state, index, &isNumber)
        return isNumber != 0 ? value : nil
    }

    /// A duration in milliseconds: a finite, non-negative number, at most about 30 years.
    func milliseconds(at index: Int32) -> TimeAmount? {
        guard let value = self.number(at: index), value.isFinite, value >= 0 else { return nil }
        return .nanoseconds(Int64(min(value, 1e12) * 1_000_000))
    }

    /// A value that is absent or `nil`.
    func isNone(at index: Int32) -> Bool { self.type(at: index) <= LUA_TNIL }

    /// A description of the value at `index` for an error message, as `lua` prints one: a string
    /// as it is, an object by its `__tostring` (called in protected mode), else its type. Call it
    /// on a state that is not running nor dead (an error object is moved off its coroutine first).
    func describe(at index: Int32) -> String {
        if self.type(at: index) == LUA_TSTRING, let text = self.string(at: index) { return text }
        if self.type(at: index) == LUA_TNUMBER, let number = lua_tolstring(self.state, index, nil) {
            return String(cString: number)  // (converts the number in place, as `lua` does)
        }
        if luaL_getmetafield(self.state, index, "__tostring") != LUA_TNIL {
            self.pop()
            if silly_pushtostring(self.state, index) != 0 {
                defer { self.pop() }
                if let text = self.string(at: -1) { return text }
            }
        }
        return "(error object is a \(String(cString: lua_typename(self.state, self.type(at: index)))) value)"
    }

    /// Pushes `table[field]` without metamethods, and returns its type.
    @discardableResult
    func rawField(_ table: Int32, _ field: String) -> Int32 {
        let table = lua_absindex(self.state, table)
        lua_pushstring(self.state, field)
        return lua_rawget(self.state, table)
    }

    // MARK: Pushing

    func push(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            _ = lua_pushlstring(self.state, utf8.baseAddress, utf8.count)
        }
    }

    func push(bytes: UnsafeRawBufferPointer) {
        _ = lua_pushlstring(self.state, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
    }

    func push(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { self.push(bytes: $0) }
    }

    func push(_ value: Int) { lua_pushinteger(self.state, lua_Integer(value)) }
    func push(_ value: Bool) { lua_pushboolean(self.state, value ? 1 : 0) }
    func pushNil() { lua_pushnil(self.state) }
    func pop(_ count: Int32 = 1) { silly_pop(self.state, count) }

    /// Sets `table[field]` to the value on top, popping it.
    func setField(_ table: Int32, _ field: String) {
        let table = lua_absindex(self.state, table)
        lua_pushstring(self.state, field)
        lua_rotate(self.state, -2, 1)
        lua_rawset(self.state, table)
    }

    /// Pushes a script object: a table `{ [1] = handle, field = text, ... }` with `metatable`,
    /// whose handle is a userdata (with `handleMetatable`) holding `object` retained; the
    /// handle's `__gc` releases it.
    func pushObject(_ object: AnyObject, handleMetatable: String, metatable: String, fields: KeyValuePairs<String, String>) {
        lua_createtable(self.state, 1, Int32(fields.count))
        let handle = lua_newuserdatauv(self.state, MemoryLayout<UnsafeMutableRawPointer?>.size, 0)!
        handle.storeBytes(of: Unmanaged.passRetained(object).toOpaque(), as: UnsafeMutableRawPointer?.self)
        luaL_setmetatable(self.state, handleMetatable)
        lua_rawseti(self.state, -2, 1)
        for (name, value) in fields {
            self.push(value)
            self.setField(-2, name)
        }
        luaL_setmetatable(self.state, metatable)
    }

    /// Pushes a table of the given functions.
    func pushTable(of functions: KeyValuePairs<String, silly_host_function>) {
        lua_createtable(self.state, 0, Int32(functions.count))
        for (name, function) in functions {
            silly_pushhostfunction(self.state, function)
            self.setField(-2, name)
        }
    }

    // MARK: Errors for the trampoline

    /// Pushes `message` and returns the code that makes the trampoline raise it.
    func raise(_ message: String) -> Int32 {
        self.push(message)
        return SILLY_HOST_ERROR
    }

    /// `bad argument #n to 'function' (message)`, as Lua's own argument checks say it.
    func argumentError(_ index: Int32, _ function: String, _ message: String) -> Int32 {
        self.raise("bad argument #\(index) to '\(function)' (\(message))")
    }

    // MARK: Registry

    /// Anchors the value on top in the registry (popping it): it is not collected until released.
    func anchor() -> Int32 { luaL_ref(self.state, Self.registry) }

    func pushAnchored(_ reference: Int32) { lua_rawgeti(self.state, Self.registry, lua_Integer(reference)) }

    func release(_ reference: Int32) { luaL_unref(self.state, Self.registry, reference) }
}
