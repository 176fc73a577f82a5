import Foundation
import Silly
import SillyTestSupport
import Testing

/// The edges of the Lua binding: errors, waiting, limits, timers, and the `silly` program itself.
@Suite("silly: the Lua binding's edges")
struct LuaBindingTests {
    /// A server that prints its address and serves each connection with `handler`.
    static func server(requires: String = "", _ handler: String) -> String {
        """
        local tcp = require "silly.net.tcp"
        local time = require "silly.time"
        local task = require "silly.task"
        \(requires)
        local listener = tcp.listen { addr = arg[1], accept = \(handler) }
        print(string.format("Listening on %s", listener.addr))
        """
    }

    @Test("a task that yields in a loop, sleeps 0 in a loop, or re-arms a 0 ms timer does not starve the connections",
          arguments: [
              "task.fork(function() while true do coroutine.yield() end end)",
              "task.fork(function() while true do time.sleep(0) end end)",
              "local function tick() time.after(0, tick) end tick()",
          ])
    func busyTasksDoNotStarveConnections(spinner: String) async throws {
        let server = try Lua.run(source: Self.server("""
            function(conn)
                while true do
                    local line = conn:read("\\n")
                    if not line then break end
                    conn:write(line)
                end
            end
            """) + "\n" + spinner, ["127.0.0.1:0"], niced: true)
        let client = try await TCP.connect(try await server.address())
        for line in ["hello\n", "still served\n"] {
            try await client.write(line)
            #expect(try await client.line() == line)
        }
        await client.close()
        #expect(await server.stop() == 0)
    }

    @Test("an error raised in accept closes that connection, prints its traceback, and the server goes on")
    func errorInAccept() async throws {
        let server = try Lua.run(source: Self.server("""
            function(conn)
                while true do
                    local line = conn:read("\\n")
                    if not line then return end
                    if line == "boom\\n" then error("boom requested") end
                    conn:write(line)
                end
            end
            """), ["127.0.0.1:0"])
        let address = try await server.address()
        let victim = try await TCP.connect(address)
        try await victim.write("boom\n")
        await #expect(throws: SillyError.endOfStream) { try await victim.read(until: "\n", timeout: patience) }
        #expect(await eventually { server.errorLog.contains("boom requested") && server.errorLog.contains("stack traceback:") })
        let survivor = try await TCP.connect(address)
        try await survivor.write("still here\n")
        #expect(try await survivor.line() == "still here\n")
        #expect(await server.stop() == 0)
    }

    @Test("a handler that never reads: its peer is held back by flow control, memory stays bounded, others are served")
    func neverReads() async throws {
        let server = try Lua.run(source: Self.server("""
            function(conn)
                if conn:read("\\n") == "sleeper\\n" then
                    time.sleep(600000)  -- never reads again
                end
                conn:write("echo mode\\n")
                while true do
                    local line = conn:read("\\n")
                    if not line then return end
                    conn:write(line)
                end
            end
            """), ["127.0.0.1:0"])
        let address = try await server.address()
        let before = server.residentKiB
        let flooder = try await TCP.connect(address)
        try await flooder.write("sleeper\n")
        // Push up to 48 MiB. The client's own send queue (4 MiB) fills once the server stops
        // taking bytes; if the server buffered everything, it never would.
        let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 * 1024)
        var pushed = 0
        var heldBack = false
        while pushed < 48 << 20 {
            do {
                try await flooder.write(chunk)
                pushed += chunk.readableBytes
            } catch SillyError.sendQueueFull {
                heldBack = true
                break
            }
            if pushed % (1 << 20) == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(heldBack, "the server took all \(pushed) bytes")
        #expect(server.residentKiB - before < 16 * 1024, "server grew by \(server.residentKiB - before) KiB")
        let other = try await TCP.connect(address)
        try await other.write("hi\n")
        #expect(try await other.line() == "echo mode\n")
        try await other.write("still served\n")
        #expect(try await other.line() == "still served\n")
        await flooder.close()
        #expect(await server.stop() == 0)
    }

    @Test("conn:isalive() turns false once the peer closes, though nothing reads: a handler that polls it ends and its socket is freed")
    func isAliveAfterPeerCloses() async throws {
        let server = try Lua.run(source: Self.server("""
            function(conn)
                conn:write("polling\\n")
                while conn:isalive() do time.sleep(20) end
                print("peer gone, unread:", conn:unreadbytes(), "read:", conn:read("\\n"))
            end
            """), ["127.0.0.1:0"])
        let address = try await server.address()
        let baseline = server.openDescriptors
        for round in 1...3 {
            let client = try await TCP.connect(address)
            #expect(try await client.line() == "polling\n")
            try await client.write("bye\n")
            await client.close()
            #expect(await server.waitForLog("peer gone, unread:\t4\tread:\tbye\n", count: round))
        }
        // The handlers returned, so the framework closed their sockets: none is left in CLOSE-WAIT.
        #expect(await eventually { server.openDescriptors == baseline }, "\(server.openDescriptors) descriptors, \(baseline) before")
        #expect(await server.stop() == 0)
    }

    @Test("1,000 concurrent connections in one Lua state, each echoed its own line")
    func thousandConnections() async throws {
        FileLimit.raiseToHardLimit()
        let server = try Lua.run(Lua.example("step2-echo.lua"), ["127.0.0.1:0"])
        let address = try await server.address()
        let connections = try await withThrowingTaskGroup(of: TCPConnection.self) { group in
            for _ in 0..<1000 {
                group.addTask { try await TCP.connect(address) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(await server.waitForLog("New client connection:", count: 1000))
        let echoed = try await withThrowingTaskGroup(of: Bool.self) { group in
            for (index, connection) in connections.enumerated() {
                group.addTask {
                    let line = "connection \(index) \(CryptoUtils.randomKey(8))\n"
                    try await connection.write(line)
                    return try await connection.line() == line
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(echoed == 1000)
        for connection in connections { await connection.close() }
        #expect(await server.waitForLog("Read error:\tsocket closed", count: 1000))
        #expect(await server.stop() == 0)
    }

    @Test("reads and writes as the tutorial states them: unreadbytes with nothing buffered, counts, arrays, timeouts, after close")
    func readAndWriteForms() async throws {
        let server = try Lua.run(source: Self.server("""
            function(conn)
                local empty, err = conn:read(conn:unreadbytes())
                conn:write(string.format("empty=%q err=%s\\n", empty, tostring(err)))
                local three = conn:read(3)
                conn:write("three=" .. three .. "\\n")
                local rest = conn:read("\\n")
                conn:write("rest=" .. rest)
                time.sleep(100)  -- a sleep inside accept
                conn:write({ "slept", " ", "ok\\n" })
                conn:write("readline=" .. conn:readline())
                conn:write("readline crlf=" .. conn:readline("\\r\\n"))
                local line, rerr = conn:read("\\n", 200)
                conn:write("timeout=" .. tostring(line) .. "," .. tostring(rerr) .. "\\n")
                print("close:", conn:close())
                print("close again:", conn:close())
                print("write after close:", conn:write("late"))
                print("read after close:", conn:read("\\n"))
                print("alive after close:", conn:isalive())
            end
            """), ["127.0.0.1:0"])
        let client = try await TCP.connect(try await server.address())
        #expect(try await client.line() == "empty=\"\" err=nil\n")
        try await client.write("abcdef\n")
        #expect(try await client.line() == "three=abc\n")
        #expect(try await client.line() == "rest=def\n")
        #expect(try await client.line() == "slept ok\n")
        try await client.write("one\nand two\r\n")
        #expect(try await client.line() == "readline=one\n")
        #expect(try await client.line() == "readline crlf=and two\r\n")
        #expect(try await client.line() == "timeout=nil,read timed out\n")
        await #expect(throws: SillyError.endOfStream) { try await client.read(until: "\n", timeout: patience) }
        #expect(await server.waitForLog("close:\ttrue\n"))
        #expect(await server.waitForLog("close again:\tfalse\tactive closed\n"))
        #expect(await server.waitForLog("write after close:\tfalse\tactive closed\n"))
        #expect(await server.waitForLog("read after close:\tnil\tactive closed\n"))
        #expect(await server.waitForLog("alive after close:\tfalse\n"))
        #expect(await server.stop() == 0)
    }

    @Test("a cancelled timer never fires; a timer passes its argument; the script ends when nothing is left")
    func timers() async throws {
        let run = try Lua.run(source: """
            local time = require "silly.time"
            local task = require "silly.task"
            local cancelled = time.after(50, function() print("cancelled timer fired") end)
            print("cancel:", time.cancel(cancelled))
            time.after(60, function(x) print("timer argument:", x) end, "payload")
            task.fork(function()
                time.sleep(300)
                print("cancel after:", time.cancel(cancelled))
                print("done")
            end)
            print("main chunk ends")
            """)
        #expect(await run.exitStatus() == 0)
        #expect(run.log == "cancel:\ttrue\nmain chunk ends\ntimer argument:\tpayload\ncancel after:\tfalse\ndone\n")
    }

    @Test("a task waits for the runtime alone: coroutine.resume refuses it; a yield loop lets timers run; huge timeouts are refused, not fatal")
    func taskGuards() async throws {
        let run = try Lua.run(source: """
            local task = require "silly.task"
            local time = require "silly.time"
            local sleeper
            task.fork(function()
                sleeper = coroutine.running()
                time.sleep(100)
                print("sleeper woke normally")
            end)
            task.fork(function()
                print("resume a task:", coroutine.resume(sleeper, "intruder"))
                print("close a task:", coroutine.close(sleeper))
                local done = false
                time.after(50, function() done = true end)
                local spins = 0
                while not done do
                    coroutine.yield()
                    spins = spins + 1
                end
                print("yield loop ended:", spins > 0)
                print("huge sleep:", pcall(time.sleep, math.huge))
                print("negative sleep:", pcall(time.sleep, -1))
                local far = time.after(1e15, function() print("never") end)
                print("far timer cancelled:", time.cancel(far))
                local co = coroutine.wrap(function() return time.sleep(1) end)
                print("wait in a nested coroutine:", pcall(co))
            end)
            """)
        #expect(await run.exitStatus() == 0, "stderr: \(run.errorLog)")
        #expect(run.log.contains("resume a task:\tfalse\tcannot resume a silly task\n"))
        #expect(run.log.contains("close a task:\tfalse\tcannot close a silly task\n"))
        #expect(run.log.contains("yield loop ended:\ttrue\n"))
        #expect(run.log.contains("huge sleep:\tfalse\tbad argument #1 to 'sleep' (milliseconds expected)\n"))
        #expect(run.log.contains("negative sleep:\tfalse\t"))
        #expect(run.log.contains("far timer cancelled:\ttrue\n"))
        #expect(run.log.contains("wait in a nested coroutine:\tfalse\t"))
        #expect(run.log.contains(":24: cannot wait here: call it from a silly task"))
        #expect(run.log.contains("sleeper woke normally\n"))
        #expect(!run.log.contains("never"))
    }

    @Test("silly.exit, and os.exit too, send what was written before the process ends, with the status asked for",
          arguments: [("silly.exit(0)", 0), ("os.exit(3)", 3), ("os.exit(false)", 1), ("os.exit(true, true)", 0)])
    func exitFlushes(exit: String, status: Int32) async throws {
        let server = try Lua.run(source: Self.server(requires: "local silly = require \"silly\"", """
            function(conn)
                conn:read("\\n")
                conn:write(string.rep("x", 32 * 1024) .. "\\n")
                -- Written in this turn of the loop (and under the 64 KiB that are flushed at
                -- once): none of it has reached the socket yet.
                print("unsent at exit:", conn:unsentbytes())
                \(exit)
            end
            """), ["127.0.0.1:0"])
        let client = try await TCP.connect(try await server.address())
        try await client.write("go\n")
        let reply = try await client.read(until: "\n", maxLength: 1 << 20, timeout: patience)
        #expect(reply.readableBytes == 32 * 1024 + 1)
        #expect(await server.exitStatus() == status)
        #expect(server.log.contains("unsent at exit:\t\(32 * 1024 + 1)\n"), "\(server.log)")
    }

    @Test("listen on a busy or bad address raises an error naming it; a refused connect returns nil and the error; listener:close() answers as conn:close() does")
    func addressErrors() async throws {
        let run = try Lua.run(source: """
            local tcp = require "silly.net.tcp"
            local task = require "silly.task"
            local listener = tcp.listen { addr = "127.0.0.1:0", accept = function(conn) end }
            print("busy:", pcall(tcp.listen, { addr = listener.addr, accept = function(conn) end }))
            print("bad:", pcall(tcp.listen, { addr = "127.0.0.1:99999", accept = function(conn) end }))
            print("no accept:", pcall(tcp.listen, { addr = "127.0.0.1:0" }))
            local conn = tcp.connect(listener.addr, { bind = "127.0.0.1:0", timeout = 2000 })
            print("bound connect:", conn ~= nil and conn:isalive(), conn:unsentbytes(), conn:unreadbytes())
            print("limit:", conn:limit(4096), pcall(conn.limit, conn, -1))
            print("bad bind:", tcp.connect(listener.addr, { bind = "10.255.255.1:0" }))
            print("bad self:", pcall(conn.read, {}, "\\n"))
            print("bad argument:", pcall(conn.read, conn, {}))
            print("bad readline:", pcall(conn.readline, conn, ""))
            conn:close()
            print("close:", listener:close())
            print("refused:", tcp.connect(listener.addr))
            print("close again:", listener:close())
            """)
        #expect(await run.exitStatus() == 0, "stderr: \(run.errorLog)")
        #expect(run.log.contains("busy:\tfalse\t"))
        #expect(run.log.contains("\taddress already in use: 127.0.0.1:"))
        #expect(run.log.contains("bad:\tfalse\t"))
        #expect(run.log.contains("port 99999 is out of range"))
        #expect(run.log.contains("no accept:\tfalse\t"))
        #expect(run.log.contains("'accept' must be a function"))
        #expect(run.log.contains("close:\ttrue\n"))
        #expect(run.log.contains("refused:\tnil\tconnection refused: 127.0.0.1:"))
        #expect(run.log.contains("close again:\tfalse\tactive closed\n"))
        #expect(run.log.contains("bound connect:\ttrue\t0\t0\n"))
        #expect(run.log.contains("limit:\tnil\tfalse\tbad argument #1 to 'limit' (positive byte count expected)\n"))
        #expect(run.log.contains("bad bind:\tnil\t"))
        #expect(run.log.contains("bad self:\tfalse\tbad self to 'read' (connection expected"))
        #expect(run.log.contains("bad argument:\tfalse\tbad argument #1 to 'read' (delimiter string or byte count expected)"))
        #expect(run.log.contains("bad readline:\tfalse\tbad argument #1 to 'readline' (delimiter must not be empty)"), "\(run.log)")
    }

    @Test("a child started by os.execute or io.popen inherits no socket: a listener closed meanwhile frees its port at once; their argument errors read as the stock ones")
    func childProcessesInheritNoSocket() async throws {
        let run = try Lua.run(source: """
            local tcp = require "silly.net.tcp"
            local accept = function(conn) end
            local a = tcp.listen { addr = "127.0.0.1:0", accept = accept }
            local client = tcp.connect(a.addr)
            -- Children that outlive the call, as a background helper would.
            print("execute:", os.execute("sleep 5 >/dev/null 2>&1 &"))
            local b = tcp.listen { addr = "127.0.0.1:0", accept = accept }
            local child = io.popen("sleep 5 >/dev/null 2>&1 &")
            print("popen:", child:close())
            a:close()
            b:close()
            client:close()
            print("listen a again:", (pcall(tcp.listen, { addr = a.addr, accept = accept })))
            print("listen b again:", (pcall(tcp.listen, { addr = b.addr, accept = accept })))
            print("bad execute:", pcall(function() os.execute({}) end))
            print("bad popen:", pcall(function() io.popen("true", "x") end))
            os.exit(0)
            """)
        #expect(await run.exitStatus() == 0, "stderr: \(run.errorLog)")
        #expect(run.log.contains("execute:\ttrue\texit\t0\n"))
        #expect(run.log.contains("popen:\ttrue\texit\t0\n"))
        #expect(run.log.contains("listen a again:\ttrue\n"), "\(run.log)")
        #expect(run.log.contains("listen b again:\ttrue\n"), "\(run.log)")
        // (The script's long path is shortened: "...illy-lua-…/script.lua".)
        #expect(run.log.contains("bad execute:\tfalse\t"))
        #expect(run.log.contains("/script.lua:15: bad argument #1 to 'execute' (string expected, got table)\n"), "\(run.log)")
        #expect(run.log.contains("bad popen:\tfalse\t"))
        #expect(run.log.contains("/script.lua:16: bad argument #2 to 'popen' (invalid mode)\n"), "\(run.log)")
    }

    @Test("SIGTERM or SIGINT closes listeners and connections: handlers see active closed, and the process exits 0",
          arguments: [SIGTERM, SIGINT])
    func terminate(signal: Int32) async throws {
        let server = try Lua.run(Lua.example("step2-echo.lua"), ["127.0.0.1:0"])
        let client = try await TCP.connect(try await server.address())
        try await client.write("hello\n")
        #expect(try await client.line() == "hello\n")
        #expect(await server.stop(signal: signal) == 0)
        #expect(server.log.contains("Read error:\tactive closed\n"))
    }

    @Test("a script busy in Lua (a loop that never waits) still ends, on one SIGINT or SIGTERM (8 s later) or a second one, with status 128 + signal",
          arguments: [(SIGINT, 2, "spinning"), (SIGTERM, 2, "spinning from the start"), (SIGTERM, 1, "spinning")])
    func terminateBusyScript(signal: Int32, count: Int, busy: String) async throws {
        let sources = [
            "spinning": """
                local task = require "silly.task"
                local time = require "silly.time"
                task.fork(function()
                    time.sleep(50)
                    print("spinning")
                    while true do end
                end)
                """,
            // In the main chunk itself, before the runtime could run anything.
            "spinning from the start": """
                io.stdout:write("spinning from the start\\n"); io.stdout:flush()
                while true do end
                """,
        ]
        let run = try Lua.run(source: try #require(sources[busy]), niced: true)
        #expect(await run.waitForLog(busy))
        for _ in 1..<count {
            kill(run.process.processIdentifier, signal)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(await run.stop(signal: signal) == 128 + signal)
    }

    @Test("the program: arguments reach the script, silly.exit sets the status, --version and --help answer")
    func program() async throws {
        let arguments = try Lua.run(source: """
            print(arg[0] ~= nil, arg[-1], select("#", ...), ...)
            """, ["one", "--help"])
        #expect(await arguments.exitStatus() == 0)
        #expect(arguments.log == "true\tsilly\t2\tone\t--help\n")

        let exit = try Lua.run(source: """
            local silly = require "silly"
            print("before")
            silly.exit(3)
            print("after")
            """)
        #expect(await exit.exitStatus() == 3)
        #expect(exit.log == "before\n")

        // Where the task cannot yield (a sort comparator, a coroutine of its own), the exit
        // is an error that a pcall catches: what follows still does not run.
        let caught = try Lua.run(source: """
            local silly = require "silly"
            local ok = pcall(table.sort, {1, 2, 3}, function(a, b) silly.exit(7) return a < b end)
            print("after the comparator", ok)
            local wrapped = coroutine.wrap(function() pcall(silly.exit, 8) print("after the wrap") end)
            wrapped()
            print("after all")
            """)
        #expect(await caught.exitStatus() == 7)
        #expect(caught.log == "", "\(caught.log)")

        let version = try ServerProcess(["--version"], addPort: false, executable: Lua.silly)
        #expect(await version.exitStatus() == 0)
        #expect(version.log.hasPrefix("silly "))
        let help = try ServerProcess(["--help"], addPort: false, executable: Lua.silly)
        #expect(await help.exitStatus() == 0)
        #expect(help.log.contains("USAGE: silly <script>"))
    }

    @Test("a missing script, a syntax error, and an error in the main chunk: one clear message, non-zero status")
    func scriptErrors() async throws {
        let missing = try Lua.run("/nonexistent/echo-server.lua")
        #expect(await missing.exitStatus() == 1)
        #expect(missing.errorLog == "silly: cannot open /nonexistent/echo-server.lua: No such file or directory\n")

        let syntax = try Lua.run(source: "local x = 1\nlocal y = = 2\n", name: "broken")
        #expect(await syntax.exitStatus() == 1)
        #expect(syntax.errorLog.hasPrefix("silly: "))
        #expect(syntax.errorLog.contains("broken.lua:2: unexpected symbol near '='"))
        #expect(syntax.errorLog.split(separator: "\n").count == 1)

        let failing = try Lua.run(source: "local t = nil\nprint(t.field)\n")
        #expect(await failing.exitStatus() == 1)
        #expect(failing.errorLog.contains(":2: attempt to index a nil value"))
        #expect(failing.errorLog.contains("stack traceback:"))
    }

    @Test("a connection accepted just before listener:close() is closed, never handed to another function")
    func acceptRacingListenerClose() async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("silly-connected-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: marker) }
        let run = try Lua.run(source: Self.server("function(conn) print(\"accept handler ran\") end") + """

            time.sleep(100)
            print("busy")
            -- Busy (the loop runs nothing) until the test has connected: its accept queues.
            -- (The test writes the file once the acceptor thread has taken the connection.)
            while true do local f = io.open(arg[2]) if f then f:close() break end end
            task.fork(function() local t1 = os.clock() while os.clock() - t1 < 0.5 do end end)
            listener:close()
            -- Released with the listener, the accept function's registry slot is reused here.
            local timer = time.after(5000, function(x) print("timer called with", x) end)
            time.sleep(500)
            print("cancelled", time.cancel(timer))
            """, ["127.0.0.1:0", marker.path])
        let address = try await run.address()
        #expect(await run.waitForLog("busy"))
        let client = try await TCP.connect(address)
        // The acceptor has taken it from the kernel's accept queue (the runtime's loop, busy in
        // Lua, has yet to see it): from here on the listener's close cannot reset it.
        let port = try #require(Int(address.split(separator: ":").last ?? ""))
        #expect(await eventually {
            SocketEntry.all().contains { $0.state == .listen && $0.localPort == port && $0.receiveQueue == 0 }
        })
        try Data().write(to: marker)
        // A clean end, not a reset: the runtime had the connection (accepted before the listener
        // closed) and closed it; it was not left in the kernel's queue.
        #expect(try await client.readToEnd().readableBytes == 0)
        await client.close()
        #expect(await run.exitStatus() == 0)
        #expect(!run.log.contains("timer called with"), "\(run.log)")
        #expect(run.log.contains("cancelled\ttrue"), "\(run.log)")
    }

    @Test("a task that fails closes its <close> variables, as coroutine.close would, and reports a closing error; so does the main chunk")
    func toBeClosedOnError() async throws {
        let run = try Lua.run(source: """
            local task = require "silly.task"
            local time = require "silly.time"
            local function closer(name)
                return setmetatable({}, {__close = function() print("closed: " .. name) end})
            end
            task.fork(function()
                local x <close> = closer("task")
                error("boom in task")
            end)
            task.fork(function()
                local z <close> = setmetatable({}, {__close = function() error("failing close") end})
                error("boom before a failing close")
            end)
            local y <close> = closer("main chunk")
            time.sleep(100)
            error("boom in main")
            """)
        #expect(await run.exitStatus() == 1)
        #expect(run.log.contains("closed: task"), "\(run.log)")
        #expect(run.log.contains("closed: main chunk"), "\(run.log)")
        #expect(run.errorLog.contains("boom in task") && run.errorLog.contains("boom in main"), "\(run.errorLog)")
        #expect(run.errorLog.contains("silly: error closing a <close> variable: "), "\(run.errorLog)")
        #expect(run.errorLog.contains("failing close"), "\(run.errorLog)")
    }

    @Test("a line may be as long as the connection's limit (1 MiB, or conn:limit(n)); past it, 'line too long'")
    func lineLimit() async throws {
        let server = try Lua.run(source: Self.server("""
            function(conn)
                local first = conn:read("\\n")
                if first == "small\\n" then conn:limit(1000) end
                while true do
                    local line, err = conn:read("\\n")
                    if not line then print("Read error:", err) return end
                    conn:write(line)
                end
            end
            """), ["127.0.0.1:0"])
        let address = try await server.address()
        let long = String(repeating: "z", count: 200_000) + "\n"  // past the core's 64 KiB default
        let client = try await TCP.connect(address)
        try await client.write("default\n" + long)
        #expect(String(buffer: try await client.read(count: long.utf8.count, timeout: patience)) == long)
        await client.close()
        let limited = try await TCP.connect(address)
        try await limited.write("small\n" + String(repeating: "y", count: 2000) + "\n")
        _ = try? await limited.readToEnd()
        #expect(await server.waitForLog("Read error:\tline too long: no delimiter within 1000 bytes"), "\(server.log)")
        await limited.close()
        #expect(await server.stop() == 0)
    }

    @Test("tcp.listen returns bound without yielding: in a require'd module's body, and before a task forked earlier runs")
    func listenWithoutYielding() async throws {
        let main = try Lua.script("""
            local task = require "silly.task"
            local tcp = require "silly.net.tcp"
            package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
            task.fork(function()
                local conn, err = tcp.connect(ADDRESS)
                print("early connect:", conn ~= nil, err)
                if conn then conn:close() end
            end)
            local listener = require "echomodule"
            ADDRESS = listener.addr
            print(string.format("Listening on %s", listener.addr))
            """, name: "main")
        try """
            local tcp = require "silly.net.tcp"
            return tcp.listen { addr = "127.0.0.1:0", accept = function(conn)
                while true do
                    local line = conn:read("\\n")
                    if not line then return end
                    conn:write(line)
                end
            end }
            """.write(to: main.folder.appendingPathComponent("echomodule.lua"), atomically: true, encoding: .utf8)
        let server = try ServerProcess([main.path], addPort: false, executable: Lua.silly, removing: main.folder)
        let address = try await server.address()
        #expect(await server.waitForLog("early connect:\ttrue\tnil"), "\(server.log) \(server.errorLog)")
        let client = try await TCP.connect(address)
        try await client.write("from a module\n")
        #expect(try await client.line() == "from a module\n")
        await client.close()
        #expect(await server.stop() == 0)
    }

    @Test("an error object is printed by its __tostring, a number as a number, as lua prints them; another is named by its type")
    func errorObjects() async throws {
        let run = try Lua.run(source: """
            local task = require "silly.task"
            local time = require "silly.time"
            task.fork(function()
                error(setmetatable({}, {__tostring = function() return "custom failure 42" end}))
            end)
            task.fork(function()
                error(setmetatable({}, {__tostring = function() error("tostring itself fails") end}))
            end)
            task.fork(function() error(42) end)
            time.sleep(50)
            error({})
            """)
        #expect(await run.exitStatus() == 1)
        #expect(run.errorLog.contains("silly: custom failure 42"), "\(run.errorLog)")
        #expect(run.errorLog.contains("silly: 42\n"), "\(run.errorLog)")
        #expect(run.errorLog.components(separatedBy: "silly: (error object is a table value)").count == 3, "\(run.errorLog)")
    }

    @Test("a script that writes, closes and ends: the process exits once every byte is sent")
    func exitAfterClose() async throws {
        let (received, receivedCount) = AsyncStream.makeStream(of: Int.self)
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            receivedCount.yield(try await conn.readToEnd().readableBytes)
        }
        // Writes until the send queue is full: the script's loop never yields, so nothing is
        // sent meanwhile, and the queue holds megabytes that only this process can still send.
        let run = try Lua.run(source: """
            local tcp = require "silly.net.tcp"
            local conn = assert(tcp.connect(arg[1]))
            local chunk = string.rep("x", 256 * 1024)
            local total = 0
            while conn:write(chunk) do total = total + #chunk end
            conn:close()
            print("wrote " .. total)
            """, ["127.0.0.1:\(listener.port)"])
        #expect(await run.exitStatus() == 0)
        let wrote = try #require(run.log.split(separator: "\n").first { $0.hasPrefix("wrote ") }.flatMap { Int($0.dropFirst(6)) },
                                 "\(run.log) \(run.errorLog)")
        var counts = received.makeAsyncIterator()
        #expect(await counts.next() == wrote)
        await listener.close()
    }
}
