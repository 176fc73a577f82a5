import Foundation
import Silly
import SillyTestSupport
import Testing

/// `Examples/lua`: the tutorial's programs as scripts, run by the built `silly` against real
/// sockets, checked for what a user would see.
@Suite("silly runs the tutorial's Lua programs")
struct LuaExamplesTests {
    @Test("Complete Code: 3 clients × 5 random lines echoed and checked; accept and close lines; a user's line echoed too")
    func completeCode() async throws {
        let server = try Lua.run(Lua.example("echo-server.lua"), ["127.0.0.1:0"])
        let address = try await server.address()
        // A user connecting while the self-test runs is served too.
        let user = try await TCP.connect(address)
        try await user.write("Hello Silly!\n")
        #expect(try await user.line() == "Hello Silly!\n")
        await user.close()

        #expect(await server.waitForLog("Client close connection", count: 3), "log: \(server.log)\n\(server.errorLog)")
        #expect(await server.waitForLog("Close connection\t", count: 4))
        let lines = server.lines
        let sent = lines.filter { $0.hasPrefix("Send [") }.map { $0.split(separator: "\t").last! }
        let received = lines.filter { $0.hasPrefix("Receive [") }.map { $0.split(separator: "\t").last! }
        #expect(sent.count == 15 && received.count == 15)
        #expect(Set(sent) == Set(received))
        #expect(lines.filter { $0.hasPrefix("Accept connection\t127.0.0.1:") }.count == 4)
        #expect(lines.filter { $0.hasPrefix("Client\t") && $0.contains("connected:") }.count == 3)
        #expect(lines.filter { $0.hasPrefix("Read error [") && $0.hasSuffix("socket closed") }.count == 4)
        #expect(!server.errorLog.contains("mismatch"))
        // The server keeps running (its listener is open) until it is told to stop.
        #expect(server.process.isRunning)
        #expect(await server.stop() == 0)
    }

    @Test("the separate client: its echo, then the process ends by itself")
    func separateClient() async throws {
        let server = try Lua.run(Lua.example("step2-echo.lua"), ["127.0.0.1:0"])
        let address = try await server.address()
        let client = try Lua.run(Lua.example("client.lua"), [address])
        #expect(await client.exitStatus() == 0)
        #expect(client.log.contains("Connected to server:\t\(address)"))
        #expect(client.log.contains("Received echo:\tHello from client\n"))
        #expect(await server.waitForLog("Read error:\tsocket closed"))
        #expect(await server.stop() == 0)
    }

    @Test("extension 1: the connection counter goes up and down")
    func counter() async throws {
        let server = try Lua.run(Lua.example("counter.lua"), ["127.0.0.1:0"])
        let address = try await server.address()
        try await TutorialChecks.counter(server, first: try await TCP.connect(address), address: address)
        #expect(await server.stop() == 0)
    }

    @Test("extension 2: a connection idle past its timer is closed by the server")
    func idleTimeout() async throws {
        let server = try Lua.run(Lua.example("timeout.lua"), ["127.0.0.1:0", "500"])
        let address = try await server.address()
        let idle = try await TCP.connect(address)
        // Nothing sent: the server's timer closes the connection. (No echo is checked first: on
        // a loaded machine the line could come after the timer.)
        await #expect(throws: SillyError.endOfStream) { try await idle.read(until: "\n", timeout: patience) }
        #expect(await server.waitForLog("Connection timeout:\t127.0.0.1:"))
        #expect(await server.stop() == 0)
    }

    @Test("extension 3: per-connection statistics when the client leaves")
    func statistics() async throws {
        let server = try Lua.run(Lua.example("stats.lua"), ["127.0.0.1:0"])
        try await TutorialChecks.statistics(server, client: try await TCP.connect(try await server.address()))
        #expect(await server.stop() == 0)
    }

    @Test("extension 4: banner, help, time, echo and quit")
    func commandProtocol() async throws {
        let server = try Lua.run(Lua.example("protocol.lua"), ["127.0.0.1:0"])
        try await TutorialChecks.commandProtocol(client: try await TCP.connect(try await server.address()))
        #expect(await server.stop() == 0)
    }

    @Test("extension 5: the stress test reports once every client ended, every message counted")
    func stress() async throws {
        let server = try Lua.run(Lua.example("step2-echo.lua"), ["127.0.0.1:0"])
        let address = try await server.address()
        let stress = try Lua.run(Lua.example("stress.lua"), [address, "50", "40"])
        #expect(await stress.exitStatus() == 0)
        #expect(stress.log.contains("Completed: 2000 messages, 0 failures, elapsed "), "output: \(stress.log)")
        #expect(await server.stop() == 0)
    }

    @Test("the tutorial's telnet session, through the real telnet under expect",
          .enabled(if: OutsideClient.enabled("telnet", "expect"), "needs telnet and expect (apt-get install telnet expect)"))
    func telnet() async throws {
        let server = try Lua.run(Lua.example("step2-echo.lua"), ["127.0.0.1:0"])
        let port = String(try await server.address().split(separator: ":").last!)
        let result = try await OutsideClientTests.tutorialTelnetSession(port: port)
        #expect(result.status == 0, "expect output: \(result.output)")
        #expect(await server.waitForLog("Read error:\tsocket closed"))
        #expect(await server.stop() == 0)
    }
}
