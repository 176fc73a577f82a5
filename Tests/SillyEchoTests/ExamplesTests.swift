import Foundation
import Silly
import SillyTestSupport
import Testing

/// The tutorial's programs in `Examples/Tutorial`, run as a reader of the README would.
@Suite("The tutorial's examples")
struct ExamplesTests {
    static let examples = builtExecutable("silly-examples")

    @Test("Complete Code: 3 clients × 5 random lines, every echo received and checked")
    func completeCode() async throws {
        let run = try ServerProcess(["complete", "127.0.0.1:0"], addPort: false, executable: Self.examples)
        #expect(await run.exitStatus() == 0)
        let lines = run.log.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("Send [") }.count == 15)
        #expect(lines.filter { $0.hasPrefix("Receive [") }.count == 15)
        #expect(lines.filter { $0.hasPrefix("Accept connection") }.count == 3)
        #expect(lines.filter { $0.hasPrefix("Client close connection") }.count == 3)
        // As the tutorial's `conn.remoteaddr`: each client names the server it connected to.
        let connected = lines.filter { $0.hasPrefix("Client ") && $0.contains(" connected: ") }
        #expect(connected.count == 3)
        let servers = Set(connected.map { $0.split(separator: " ").last! })
        #expect(servers.count == 1, "\(connected)")
    }

    @Test("a server example's lines reach a pipe as it prints them, not when it exits")
    func outputAsPrinted() async throws {
        let address = "127.0.0.1:\(RawSocket.freePortBelowEphemeralRange())"
        let server = try ServerProcess(["counter", address], addPort: false, executable: Self.examples)
        var conn: TCPConnection?
        #expect(await eventually(within: programPatience) {
            conn = try? await TCP.connect(address)
            return conn != nil
        })
        #expect(await server.waitForLog("current connections: 1"), "\(server.log)")
        await conn?.close()
        _ = await server.stop()
    }

    @Test("the separate client gets its echo from silly-echo")
    func separateClient() async throws {
        let server = try ServerProcess([])
        let address = try await server.address()
        let client = try ServerProcess(["client", address], addPort: false, executable: Self.examples)
        #expect(await client.exitStatus() == 0)
        #expect(client.log.contains("Received echo: Hello from client"))
        #expect(await server.stop() == 0)
    }

    @Test("the stress test: 100 clients × 100 messages against silly-echo, all received")
    func stressTest() async throws {
        let server = try ServerProcess(["--log-level", "notice"])
        let address = try await server.address()
        let stress = try ServerProcess(["stress", address], addPort: false, executable: Self.examples)
        #expect(await stress.exitStatus() == 0)
        #expect(stress.log.contains("Completed: 10000 messages, 0 failures"), "output: \(stress.log)")
        #expect(await server.stop() == 0)
    }

    @Test("the stress test against a server that answers wrongly or not at all: every failed client is counted")
    func stressTestFailures() async throws {
        // A server that takes one line, answers another, and closes.
        let wrong = try await TCP.listen("127.0.0.1:0") { conn in
            _ = try await conn.read(until: "\n")
            try await conn.write("not an echo\n")
        }
        let stress = try ServerProcess(["stress", "127.0.0.1:\(wrong.port)"], addPort: false, executable: Self.examples)
        #expect(await stress.exitStatus() == 0)
        #expect(stress.log.contains("Completed: 0 messages, 100 failures"), "output: \(stress.log)")
        await wrong.close()
    }

    @Test("exercise 4's protocol example answers help and quit")
    func protocolExample() async throws {
        let address = "127.0.0.1:\(RawSocket.freePortBelowEphemeralRange())"
        let server = try ServerProcess(["protocol", address], addPort: false, executable: Self.examples)
        defer { server.process.terminate() }
        let conn = try await eventuallyConnect(address)
        #expect(try await conn.line() == "Welcome to Silly Echo Server!\n")
        #expect(try await conn.line() == "Type 'help' for commands\n")
        try await conn.write("  quit \r\n")
        #expect(String(buffer: try await conn.read(count: 2, timeout: patience)) == "> ")
        #expect(try await conn.line() == "Goodbye!\n")
        await conn.close()
    }
}

/// Connects once the server is up.
func eventuallyConnect(_ address: String) async throws -> TCPConnection {
    let deadline = ContinuousClock.now + patience
    while true {
        do {
            return try await TCP.connect(address)
        } catch {
            if ContinuousClock.now > deadline { throw error }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
