import Foundation
import Silly
import SillyTestSupport
import Testing

/// The tutorial's own code, cut from the seed by line range and run by `silly` unchanged.
///
/// The seed is flattened text: some blocks' first or last line has prose glued to it ("endSave
/// the code as echo-server.lua."); only that prose is cut. The extension snippets lack the
/// `require` lines of the modules they use; only those are added. The code binds
/// 127.0.0.1:9999 as written, so these tests run one at a time.
enum Seed {
    static let file = Lua.sharedKit.appendingPathComponent("seed/000_914d7e65d22b3831.txt")
    static let available = FileManager.default.fileExists(atPath: file.path)
    static let address = "127.0.0.1:9999"

    /// Lines `first...last` (1-based) of the seed; `prose` is cut from the end of the last line.
    static func code(_ first: Int, _ last: Int, cutting prose: String? = nil, adding requires: [String] = []) throws -> String {
        let text = try String(contentsOf: Self.file, encoding: .utf8)
        var lines = text.components(separatedBy: "\n")[(first - 1)...(last - 1)].map { String($0) }
        if let prose {
            let end = lines[lines.count - 1]
            try #require(end.hasSuffix(prose), "seed line \(last) no longer ends with the prose \"\(prose)\": \(end)")
            lines[lines.count - 1] = String(end.dropLast(prose.count))
        }
        let modules = requires.map { "local \($0.split(separator: ".").last!) = require \"silly.\($0)\"" }
        return (modules + lines).joined(separator: "\n") + "\n"
    }

    /// Runs seed code with `silly` once port 9999 is known to be free.
    static func run(_ code: String, name: String) async throws -> ServerProcess {
        try await Self.requirePortFree()
        return try Lua.run(source: code, name: name)
    }

    /// Waits (up to `programPatience`) until 127.0.0.1:9999 can be bound: the previous test's
    /// program may still be ending.
    static func requirePortFree() async throws {
        var last: (any Error)?
        let free = await eventually(within: programPatience) {
            do {
                let probe = try await TCP.listen(Self.address) { _ in }
                await probe.close()
                return true
            } catch {
                last = error
                return false
            }
        }
        guard free else {
            Issue.record("port 9999 is taken (\(last.map { "\($0)" } ?? "?")): the tutorial's code binds 127.0.0.1:9999 as written; stop what holds it")
            throw last ?? SillyError.addressInUse(Self.address)
        }
    }

    /// Waits (up to `programPatience`) until `server` accepts connections on 9999.
    static func connect() async throws -> TCPConnection {
        var last: any Error = SillyError.connectionRefused(Self.address)
        let deadline = ContinuousClock.now + programPatience
        while ContinuousClock.now < deadline {
            do { return try await TCP.connect(Self.address) } catch { last = error }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw last
    }

    static let enabled = Seed.available || OutsideClient.required
    static let skipReason: Comment = "needs the tutorial seed at ../shared/seed (absent: the seed tests skip)"
}

@Suite("The tutorial's seed code, run unchanged by silly", .serialized, .enabled(if: Seed.enabled, Seed.skipReason))
struct LuaSeedTests {
    @Test("Complete Code (lines 92-159): 3 clients' 5 echoes each verified; the separate client (lines 183-205) gets its echo")
    func completeCodeAndClient() async throws {
        let server = try await Seed.run(try Seed.code(92, 159, cutting: "Save the code as echo-server.lua."), name: "echo-server")
        #expect(await server.waitForLog("Client close connection", count: 3), "log: \(server.log)\n\(server.errorLog)")
        let lines = server.lines
        let sent = lines.filter { $0.hasPrefix("Send [\t127.0.0.1:9999\t] ->\t") }.map { $0.split(separator: "\t").last! }
        let received = lines.filter { $0.hasPrefix("Receive [\t127.0.0.1:9999\t] ->\t") }.map { $0.split(separator: "\t").last! }
        #expect(sent.count == 15)
        #expect(received.count == 15)
        #expect(Set(sent) == Set(received))
        #expect(lines.filter { $0.hasPrefix("Client\t") && $0.hasSuffix("connected:\t127.0.0.1:9999") }.count == 3)
        #expect(lines.filter { $0.hasPrefix("Accept connection\t127.0.0.1:") }.count == 3, "log: \(server.log)")
        #expect(!server.errorLog.contains("Echo data mismatch"))
        #expect(await server.waitForLog("Close connection\t127.0.0.1:", count: 3))

        let client = try Lua.run(source: try Seed.code(183, 205, cutting: "Code Analysis"), name: "client")
        #expect(await client.exitStatus() == 0)
        #expect(client.log.contains("Connected to server:\t127.0.0.1:9999\n"))
        #expect(client.log.contains("Received echo:\tHello from client\n"))
        #expect(await server.waitForLog("Accept connection", count: 4))
        #expect(await server.stop() == 0)
    }

    @Test("the telnet session against the Complete Code, as the tutorial shows it",
          .enabled(if: OutsideClient.enabled("telnet", "expect"), "needs telnet and expect (apt-get install telnet expect)"))
    func telnet() async throws {
        let server = try await Seed.run(try Seed.code(92, 159, cutting: "Save the code as echo-server.lua."), name: "echo-server")
        await (try Seed.connect()).close()
        let result = try await OutsideClientTests.tutorialTelnetSession(port: "9999")
        #expect(result.status == 0, "expect output: \(result.output)")
        #expect(await server.stop() == 0)
    }

    @Test("extension 1 (lines 287-305): the connection counter")
    func counter() async throws {
        let server = try await Seed.run(try Seed.code(287, 305, cutting: "2. Add Timeout Handling", adding: ["net.tcp"]), name: "counter")
        try await TutorialChecks.counter(server, first: try await Seed.connect(), address: Seed.address)
        #expect(await server.stop() == 0)
    }

    @Test("extension 2 (lines 307-331): a connection idle for 30 seconds is closed")
    func idleTimeout() async throws {
        let server = try await Seed.run(try Seed.code(307, 331, cutting: "3. Add Data Statistics", adding: ["net.tcp"]), name: "timeout")
        let client = try await Seed.connect()
        try await client.write("hello\n")
        #expect(try await client.line() == "hello\n")
        // The snippet's timer is 30 s, as written: wait for it, with room to spare.
        await #expect(throws: SillyError.endOfStream) { try await client.read(until: "\n", timeout: .seconds(45)) }
        #expect(await server.waitForLog("Connection timeout:\t127.0.0.1:"))
        #expect(await server.stop() == 0)
    }

    @Test("extension 3 (lines 333-356): statistics when the client leaves")
    func statistics() async throws {
        let server = try await Seed.run(try Seed.code(333, 356, cutting: "4. Implement Simple Protocol", adding: ["net.tcp"]), name: "stats")
        try await TutorialChecks.statistics(server, client: try await Seed.connect())
        #expect(await server.stop() == 0)
    }

    @Test("extension 4 (lines 358-384): the help/time/quit protocol")
    func commandProtocol() async throws {
        let server = try await Seed.run(try Seed.code(358, 384, cutting: "5. Performance Testing", adding: ["net.tcp"]), name: "protocol")
        try await TutorialChecks.commandProtocol(client: try await Seed.connect())
        #expect(await server.stop() == 0)
    }

    @Test("extension 5 (lines 386-411): the stress test against the counter server prints its total and ends")
    func stress() async throws {
        let server = try await Seed.run(try Seed.code(287, 305, cutting: "2. Add Timeout Handling", adding: ["net.tcp"]), name: "counter")
        await (try Seed.connect()).close()
        let stress = try Lua.run(source: try Seed.code(386, 411, cutting: "Next Steps"), name: "stress")
        #expect(await stress.exitStatus() == 0)
        // The snippet prints when client 100 ends (others may still run) and divides by whole
        // seconds (0 on a fast run: inf msg/s); its count is whatever had arrived by then.
        let report = stress.log.split(separator: "\n").first { $0.hasPrefix("Completed: ") }
        #expect(report != nil, "output: \(stress.log) \(stress.errorLog)")
        #expect(report?.contains(" messages, elapsed ") == true)
        #expect(await server.waitForLog("remaining connections: 0"))
        #expect(await server.stop() == 0)
    }
}
