#include "CLuaShim.h"

#include <stdio.h>

#include <lua.h>
#include <lauxlib.h>

/// Marks a resume made by `silly_resume`: a task resumed by anything else (a script's
/// `coroutine.resume` of a task's thread) must not take that caller's values for its results.
static char silly_resume_mark;

/// Continues a host function that yielded: the values `silly_resume` passed are on the stack,
/// with the action and the mark on top.
static int silly_continue(lua_State *L, int status, lua_KContext context) {
    (void)status;
    (void)context;
    if (lua_gettop(L) < 2 || lua_touserdata(L, -1) != &silly_resume_mark) {
        return luaL_error(L, "a silly task was resumed by coroutine.resume while it waited for the runtime");
    }
    lua_pop(L, 1);
    int action = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (action == SILLY_HOST_ERROR) {
        // Raised where the script called the function: "script.lua:12: message".
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
        return lua_error(L);
    }
    return action;
}

static int silly_trampoline(lua_State *L) {
    silly_host_function function = (silly_host_function)lua_touserdata(L, lua_upvalueindex(1));
    int action = function(L);
    if (action >= 0) {
        return action;
    }
    if (action == SILLY_HOST_YIELD) {
        return lua_yieldk(L, 0, 0, silly_continue);
    }
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    return lua_error(L);
}

void silly_pushhostfunction(lua_State *L, silly_host_function function) {
    lua_pushlightuserdata(L, (void *)function);
    lua_pushcclosure(L, silly_trampoline, 1);
}

int silly_resume(lua_State *co, int nargs, int action, int *nresults) {
    lua_pushinteger(co, action);
    lua_pushlightuserdata(co, &silly_resume_mark);
    return lua_resume(co, NULL, nargs + 2, nresults);
}

static void silly_halt_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    luaL_error(L, "silly.exit");
}

void silly_halt(lua_State *L) { lua_sethook(L, silly_halt_hook, LUA_MASKCOUNT, 1); }

int silly_registryindex(void) { return LUA_REGISTRYINDEX; }
void silly_pop(lua_State *L, int n) { lua_pop(L, n); }
void silly_remove(lua_State *L, int index) { lua_remove(L, index); }
int silly_isyieldable(lua_State *L) { return lua_isyieldable(L); }
void silly_gc_generational(lua_State *L) { lua_gc(L, LUA_GCGEN, 0, 0); }
void **silly_extraspace(lua_State *L) { return (void **)lua_getextraspace(L); }
void silly_traceback(lua_State *L, lua_State *co, const char *message) { luaL_traceback(L, co, message, 0); }

int silly_closethread(lua_State *co) {
#if LUA_VERSION_RELEASE_NUM >= 50406
    return lua_closethread(co, NULL);
#else
    return lua_resetthread(co);
#endif
}

static int silly_tostring_call(lua_State *L) {
    luaL_tolstring(L, 1, NULL);
    return 1;
}

int silly_pushtostring(lua_State *L, int index) {
    index = lua_absindex(L, index);
    if (!lua_checkstack(L, 2)) return 0;
    lua_pushcfunction(L, silly_tostring_call);
    lua_pushvalue(L, index);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

void silly_flush_stdout_if_free(void) {
    if (ftrylockfile(stdout) != 0) return;
    fflush_unlocked(stdout);
    funlockfile(stdout);
}

// MARK: Child processes

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

void silly_close_on_exec_from(int lowest) {
#if defined(SYS_close_range)
    // Linux 5.11 and later, in one call: CLOSE_RANGE_CLOEXEC.
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 1U << 2) == 0) return;
#endif
    DIR *descriptors = opendir("/proc/self/fd");
    if (descriptors == NULL) {
        // Out of descriptors (or no /proc): every one the limit allows, one by one.
        struct rlimit limit;
        long highest = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY ? (long)limit.rlim_cur : 65536;
        for (long fd = lowest; fd < highest; fd++) {
            int flags = fcntl((int)fd, F_GETFD);
            if (flags >= 0) fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
        }
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(descriptors)) != NULL) {
        char *end;
        long fd = strtol(entry->d_name, &end, 10);
        if (*end != '\0' || end == entry->d_name || fd < lowest || fd == dirfd(descriptors)) continue;
        int flags = fcntl((int)fd, F_GETFD);
        if (flags >= 0) fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
    }
    closedir(descriptors);
}

/// A stock function that starts a child (`os.execute`, `io.popen`), its descriptors marked first.
/// The stock C function runs in this one's frame, on its arguments: its errors read as its own.
static int silly_guarded_spawn(lua_State *L) {
    lua_CFunction stock = lua_tocfunction(L, lua_upvalueindex(1));
    silly_close_on_exec_from(3);
    return stock(L);
}

static void silly_guard(lua_State *L, const char *library, const char *name) {
    if (lua_getglobal(L, library) == LUA_TTABLE) {
        lua_getfield(L, -1, name);
        if (lua_tocfunction(L, -1) != NULL) {
            lua_pushcclosure(L, silly_guarded_spawn, 1);
            lua_setfield(L, -2, name);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

void silly_guard_child_processes(lua_State *L) {
    silly_guard(L, "os", "execute");
    silly_guard(L, "io", "popen");
}
