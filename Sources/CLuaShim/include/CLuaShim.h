#ifndef SILLY_CLUA_SHIM_H
#define SILLY_CLUA_SHIM_H

// What Swift needs of Lua's C API beyond what it imports directly: the API's macros as functions,
// and the trampoline that lets a Swift function raise an error or yield without a longjmp ever
// crossing a Swift frame (both leave the C function by longjmp; see DESIGN-NOTES).

typedef struct lua_State lua_State;

/// A function of the host (Swift) that Lua calls through the trampoline. It checks its
/// arguments with non-raising calls and returns what the trampoline should do:
/// n >= 0: return the n values on top of the stack; SILLY_HOST_YIELD: yield the coroutine
/// (the host resumes it later with its results); SILLY_HOST_ERROR: raise the message on top.
typedef int (*silly_host_function)(lua_State *L);

#define SILLY_HOST_YIELD (-1)
#define SILLY_HOST_ERROR (-2)

/// Pushes `function` as a Lua function, wrapped in the trampoline.
void silly_pushhostfunction(lua_State *L, silly_host_function function);

/// Resumes `co`, suspended by a host function's SILLY_HOST_YIELD, with `nargs` values pushed
/// on it; `action` says what that host function does with them, as its return value would:
/// n >= 0 returns the top n of them, SILLY_HOST_ERROR raises the top one. (A task resumed any
/// other way raises an error instead of taking its resumer's values.)
int silly_resume(lua_State *co, int nargs, int action, int *nresults);

/// Makes every further Lua instruction on `L` raise "silly.exit": the process is ending, and code
/// that caught the error `silly.exit` raised where it could not yield must not go on.
void silly_halt(lua_State *L);

int silly_registryindex(void);
void silly_pop(lua_State *L, int n);
void silly_remove(lua_State *L, int index);
int silly_isyieldable(lua_State *L);
/// Switches the collector to generational mode (lua_gc is variadic: Swift cannot call it).
void silly_gc_generational(lua_State *L);
/// The pointer-sized space Lua keeps with every thread (copied from the main thread).
void **silly_extraspace(lua_State *L);
/// `luaL_traceback` of `co`, with `message`, pushed on `L`.
void silly_traceback(lua_State *L, lua_State *co, const char *message);
/// Pushes the value at `index` as `tostring` shows it (its `__tostring`, if it has one), called in
/// protected mode; returns 0, with nothing pushed, if that raised an error.
int silly_pushtostring(lua_State *L, int index);
/// Closes the pending to-be-closed (`<close>`) variables of `co`, a coroutine that ended with an
/// error (`lua_resetthread`, named `lua_closethread` from Lua 5.4.6), as `coroutine.close` would.
int silly_closethread(lua_State *co);

/// Flushes what the script wrote to stdout, unless another thread holds the stream (a write
/// blocked on a full pipe): for the runtime's last-resort exit, which must not wait for it.
void silly_flush_stdout_if_free(void);

/// Marks every descriptor from `lowest` up close-on-exec. SwiftNIO opens its sockets without
/// the flag, so a child process would inherit them: a listener closed here would stay open in it.
void silly_close_on_exec_from(int lowest);
/// Makes `os.execute` and `io.popen` mark the process's descriptors (but 0, 1 and 2)
/// close-on-exec before they start their child.
void silly_guard_child_processes(lua_State *L);

#endif
