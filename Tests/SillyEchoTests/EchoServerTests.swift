import Foundation
import NIOCore
import Silly
import SillyEcho
import SillyTestSupport
import Synchronization
import Testing

@Suite("silly-echo end to end: the built executable, driven as a user would")
struct EchoServerTests {
    @Test("echoes lines; logs accept and close with the connection count and the connection's statistics")
    func lineEcho() async throws {
        let server = try ServerProcess([])
        let conn = try await TCP.connect(try await server.address())
        let peer = try #require(conn.localAddress).description
        #expect(await server.waitForLog("Accept connection \(peer), connections: 1"))
        for line in ["Hello Silly!\n", "This is a test\n", "\n"] {
            try await conn.write(line)
            #expect(try await conn.line() == line)
        }
        await conn.close()
        #expect(await server.waitForLog(
            "Close connection \(peer) (client closed): received 29 bytes, sent 29 bytes, messages 3; connections: 0"))
        #expect(await server.stop() == 0)
    }

    @Test("logs carry a timestamp and a level, start with the open-file limit, and --log-level filters them")
    func logging() async throws {
        let verbose = try ServerProcess([])
        _ = try await verbose.address()
        let first = try #require(verbose.log.split(separator: "\n").first)
        #expect(first.contains(" info silly-echo: "), "log line: \(first)")
        #expect(first.contains("Open-file limit: "))
        #expect(first.first?.isNumber == true)  // an ISO 8601 timestamp leads the line
        #expect(await verbose.stop() == 0)

        let quiet = try ServerProcess(["--log-level", "warning"])
        let conn = try await TCP.connect(try await Self.address(fromNetstatOf: quiet))
        try await conn.write("hi\n")
        #expect(try await conn.line() == "hi\n")
        await conn.close()
        #expect(await quiet.stop() == 0)
        #expect(!quiet.log.contains("Accept connection"))
        #expect(!quiet.log.contains(" info "))
    }

    /// The port of a server whose "Listening on" line is filtered out, from /proc/net/tcp.
    static func address(fromNetstatOf server: ServerProcess) async throws -> String {
        let pid = server.process.processIdentifier
        var port: Int?
        _ = await eventually {
            port = Self.listeningPort(of: pid)
            return port != nil
        }
        return "127.0.0.1:\(try #require(port))"
    }

    /// The TCP port `pid` listens on, from its socket inodes and /proc/net/tcp.
    static func listeningPort(of pid: Int32) -> Int? {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        let inodes = Set(fds.compactMap { fd -> String? in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                target.hasPrefix("socket:[") else { return nil }
            return String(target.dropFirst(8).dropLast())
        })
        return SocketEntry.all().first { $0.state == .listen && inodes.contains($0.inode) }?.localPort
    }

    @Test("the connection counter is exact under concurrency; totals are logged at shutdown")
    func counterAndTotals() async throws {
        let server = try ServerProcess(["--stats-interval", "100ms"])
        let address = try await server.address()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<40 {
                group.addTask {
                    let conn = try await TCP.connect(address)
                    try await conn.write("client \(client)\n")
                    #expect(try await conn.line() == "client \(client)\n")
                    await conn.close()
                }
            }
            try await group.waitForAll()
        }
        #expect(await server.waitForLog("connections open 0, accepted 40, rejected 0"))
        #expect(await server.stop() == 0)
        let opens = server.log.split(separator: "\n").filter { $0.contains("Accept connection") }
        let counts = Set(opens.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } })
        #expect(opens.count == 40)
        #expect(counts.allSatisfy { (1...40).contains($0) })
        #expect(server.log.contains("Totals: connections open 0, accepted 40, rejected 0; received"))
        #expect(server.log.contains("Shutdown complete. Totals: connections open 0, accepted 40"))
    }

    @Test("command mode: banner, prompt, help, time, Echo:, quit; telnet's \\r\\n and spaces are trimmed")
    func commandProtocol() async throws {
        let server = try ServerProcess(["--mode", "command"])
        let conn = try await TCP.connect(try await server.address())
        #expect(try await conn.line() == "Welcome to Silly Echo Server!\n")
        #expect(try await conn.line() == "Type 'help' for commands\n")
        func prompt() async throws { #expect(String(buffer: try await conn.read(count: 2, timeout: patience)) == "> ") }
        try await prompt()
        try await conn.write("  help \r\n")
        #expect(try await conn.line() == "Command list:\n")
        #expect(try await conn.line() == "  help - Show this help\n")
        #expect(try await conn.line() == "  time - Show server time\n")
        #expect(try await conn.line() == "  quit - Disconnect\n")
        try await prompt()
        try await conn.write("time\r\n")
        let time = try await conn.line()
        #expect(time.contains(String(Calendar(identifier: .gregorian).component(.year, from: Date()))))
        try await prompt()
        try await conn.write("hello \u{00e9}\u{00ff}\r\n")
        #expect(try await conn.line() == "Echo: hello \u{00e9}\u{00ff}\r\n")
        try await prompt()
        // Not UTF-8 (a bad continuation byte too), a NUL, a lone CR: echoed as sent.
        let garbage: [UInt8] = [0xFF, 0xFE, 0x00, 0x0D, 0x41, 0xC3, 0x28, 0x0A]
        try await conn.write(ByteBuffer(bytes: garbage))
        #expect(Array(buffer: try await conn.read(until: "\n", timeout: patience)) == Array("Echo: ".utf8) + garbage)
        try await prompt()
        try await conn.write("quit\r\n")
        #expect(try await conn.line() == "Goodbye!\n")
        await #expect(throws: SillyError.endOfStream) { try await conn.read(until: "\n", timeout: patience) }
        #expect(await server.waitForLog("(client quit)"))
        await conn.close()
        #expect(await server.stop() == 0)
    }

    @Test("command mode's close line counts every byte the client got: banner and prompts too")
    func commandStatistics() async throws {
        let server = try ServerProcess(["--mode", "command"])
        let conn = try await TCP.connect(try await server.address())
        let input = "help\r\n  time  \nhello world\r\nHELP\nquit\n"
        try await conn.write(input)
        let received = try await conn.readToEnd().readableBytes
        await conn.close()
        #expect(await server.waitForLog("received \(input.utf8.count) bytes, sent \(received) bytes, messages 5"), "\(server.log)")
        #expect(await server.stop() == 0)
    }

    @Test("raw mode echoes random binary data, however it is chunked, byte for byte")
    func rawMode() async throws {
        let server = try ServerProcess(["--mode", "raw"])
        let conn = try await TCP.connect(try await server.address())
        var generator = SystemRandomNumberGenerator()
        let payload = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var offset = 0
        while offset < payload.count {
            let size = Int.random(in: 1...20_000, using: &generator)
            try await conn.write(payload[offset..<min(offset + size, payload.count)])
            offset += size
            if Bool.random(using: &generator) { await Task.yield() }
        }
        let echoed = try await conn.read(count: payload.count, timeout: patience)
        #expect(Array(buffer: echoed) == payload)
        await conn.close()
        #expect(await server.stop() == 0)
    }

    @Test("half-close: every line is echoed, the final unterminated one too, then the server closes")
    func halfClose() async throws {
        let server = try ServerProcess([])
        let conn = try await TCP.connect(try await server.address())
        try await conn.write("a\nb\nc")
        await conn.shutdownOutput()
        #expect(String(buffer: try await conn.readToEnd()) == "a\nb\nc")
        await conn.close()
        #expect(await server.stop() == 0)
    }

    @Test("an idle connection is closed after --idle-timeout, and the log says why")
    func idleTimeout() async throws {
        // No data at all: the close cannot race a line, however loaded the machine is.
        let server = try ServerProcess(["--idle-timeout", "300ms"])
        let conn = try await TCP.connect(try await server.address())
        await #expect(throws: SillyError.endOfStream) { try await conn.read(until: "\n", timeout: patience) }
        #expect(await server.waitForLog("]: no complete line for 0.3 s"), "\(server.log)")
        #expect(await server.waitForLog("(idle timeout)"))
        await conn.close()
        #expect(await server.stop() == 0)
    }

    @Test("a line longer than --max-line closes that connection only, with a log line")
    func maxLine() async throws {
        let server = try ServerProcess(["--max-line", "1024"])
        let address = try await server.address()
        let good = try await TCP.connect(address)
        let bad = try await TCP.connect(address)
        // The echo owed before the long line arrives, then a clean end, not a reset (the server
        // reads and drops the rest of what the client sends).
        try await bad.write("ok\n" + String(repeating: "x", count: 100_000))
        await bad.shutdownOutput()  // the server's close ends on it, not on its 1 s cap
        #expect(String(buffer: try await bad.readToEnd()) == "ok\n")
        #expect(await server.waitForLog("Line too long"))
        try await good.write("unaffected\n")
        #expect(try await good.line() == "unaffected\n")
        await good.close()
        await bad.close()
        // At the limit exactly: 1,023 bytes and "\n", or a last line of 1,024 bytes with none.
        for line in [String(repeating: "y", count: 1023) + "\n", String(repeating: "z", count: 1024)] {
            let edge = try await TCP.connect(address)
            try await edge.write(line)
            await edge.shutdownOutput()
            #expect(String(buffer: try await edge.readToEnd()) == line)
            await edge.close()
        }
        #expect(await server.stop() == 0)
    }

    @Test("a --max-line past the 4 MiB send queue: a line that long is echoed whole, in line and command mode",
          arguments: [[], ["--mode", "command"]])
    func maxLineBeyondSendQueue(mode: [String]) async throws {
        let server = try ServerProcess(["--max-line", "8000000"] + mode)
        var options = ConnectionOptions()
        options.sendQueueLimit = .max  // this client's own queue takes the line at once
        let conn = try await TCP.connect(try await server.address(), options: options)
        let line = String(repeating: "q", count: 4_999_999) + "\n"
        try await conn.write(line)
        await conn.shutdownOutput()
        let answer = String(buffer: try await conn.readToEnd())
        #expect(answer.contains(mode.isEmpty ? line : "Echo: " + line), "\(answer.utf8.count) bytes")
        await conn.close()
        #expect(await server.stop() == 0)
        #expect(!server.log.contains("send queue full"), "\(server.log)")
    }

    @Test("beyond --max-connections a client is told the server is full and closed; it is counted and logged")
    func maxConnections() async throws {
        let server = try ServerProcess(["--max-connections", "2"])
        let address = try await server.address()
        var held: [TCPConnection] = []
        for index in 0..<2 {
            let conn = try await TCP.connect(address)
            try await conn.write("\(index)\n")
            #expect(try await conn.line() == "\(index)\n")
            held.append(conn)
        }
        let extra = try await TCP.connect(address)
        #expect(try await extra.line().hasPrefix("Server is full"))
        await #expect(throws: SillyError.endOfStream) { try await extra.read(until: "\n", timeout: patience) }
        #expect(await server.waitForLog("Reject connection"))
        // A client that sends at once still gets the line, and a clean end rather than a reset
        // (the server reads and drops what it sent until it is done).
        let eager = try await TCP.connect(address)
        try await eager.write(ByteBuffer(repeating: UInt8(ascii: "e"), count: 50_000))
        await eager.shutdownOutput()  // the server's close ends on it, not on its 1 s cap
        #expect(String(buffer: try await eager.readToEnd()).hasPrefix("Server is full"))
        for conn in held { await conn.close() }
        await extra.close()
        await eager.close()
        #expect(await server.stop() == 0)
        #expect(server.log.contains("accepted 2, rejected 2"))
    }

    @Test("the default --max-connections is lowered to what the open-file limit allows, so extra clients are still told the server is full")
    func maxConnectionsWithinFileLimit() async throws {
        let server = try ServerProcess(["-c", "ulimit -n 128 && exec \(sillyEchoPath) --addr 127.0.0.1:0"],
                                       addPort: false, executable: "/bin/sh")
        let address = try await server.address()
        #expect(server.log.contains("10000 connections (the default --max-connections) are more than the open-file limit allows (128, 64 of them kept for the server): using 64"))
        let answers = try await servedOrToldFull(clients: 70, at: address)
        #expect(answers.served == 64 && answers.told == 6, "\(answers)")
        #expect(await server.stop() == 0)
    }

    @Test("a client that sends without reading cannot grow the server's memory, whatever --max-line is; nothing it sent is lost",
          arguments: [[], ["--max-line", "\(32 * 1024 * 1024)"]])
    func nonReadingClient(arguments: [String]) async throws {
        let server = try ServerProcess(arguments)
        var options = ConnectionOptions()
        options.sendQueueLimit = .max
        let conn = try await TCP.connect(try await server.address(), options: options)
        try await Task.sleep(for: .milliseconds(100))
        let baseline = server.residentKiB
        let line = ByteBuffer(string: String(repeating: "z", count: 1023) + "\n")
        let lines = 32 * 1024  // 32 MiB
        try await conn.write(contentsOf: Array(repeating: line, count: lines))
        // Flow control holds the rest in this client: the server stops reading while its replies
        // wait. It has, once bytes wait in its socket and it takes no more of them for a while.
        let serverPort = try #require(conn.remoteAddress?.port)
        let clientPort = try #require(conn.localAddress?.port)
        let waiting = { SocketEntry.all().first { $0.localPort == serverPort && $0.remotePort == clientPort }?.receiveQueue ?? 0 }
        #expect(await eventually {
            let before = waiting()
            try? await Task.sleep(for: .milliseconds(200))
            return before > 0 && waiting() == before
        })
        let grown = server.residentKiB - baseline
        #expect(grown < 16 * 1024, "server grew by \(grown) KiB while a client sent 32 MiB without reading")
        var received = 0
        while received < lines * 1024 {
            received += try await conn.readAvailable(timeout: patience).readableBytes
        }
        #expect(received == lines * 1024)
        await conn.close()
        #expect(await server.stop() == 0)
    }

    @Test("SIGTERM with a connection open: the echo it owed arrives, totals are logged, exit code 0")
    func gracefulShutdown() async throws {
        // A grace period no stall of a loaded machine reaches: the server needs none of it.
        let server = try ServerProcess(["--shutdown-grace", "30s"])
        let conn = try await TCP.connect(try await server.address())
        // One write, one segment: once "first" is echoed, the server has "owed" too.
        try await conn.write("first\nowed\n")
        #expect(try await conn.line() == "first\n")
        kill(server.process.processIdentifier, SIGTERM)
        #expect(try await conn.line() == "owed\n")
        await #expect(throws: SillyError.endOfStream) { try await conn.read(until: "\n", timeout: patience) }
        #expect(await server.exitStatus() == 0)
        #expect(server.log.contains("(server shutdown)") || server.log.contains("(client closed)"))
        #expect(server.log.contains("Shutdown complete. Totals: connections open 0, accepted 1, rejected 0; received 11 bytes"))
        await conn.close()
    }

    @Test("SIGTERM while a connection's close waits for its client to take the echoes queued: the process waits too (within the grace period); they arrive whole, then a clean end")
    func shutdownWaitsForClosingConnections() async throws {
        // Should this client stall for the idle timeout before its echoes back up (a loaded
        // machine), the server closes it for no complete line instead, and the test tries again
        // with twice the time.
        for seconds in [2, 4, 8] {
            // (A close that waits longer than the default 5 s for this client: a loaded machine
            // may stall it that long before it reads.)
            let server = try ServerProcess(["--shutdown-grace", "60s", "--idle-timeout", "\(seconds)s", "--close-linger", "60s"])
            // A client that sends much and reads nothing: its echoes back up past what the kernel
            // holds, and the idle timeout closes its connection with echoes still queued.
            var options = ConnectionOptions()
            options.sendQueueLimit = .max
            options.receiveLimit = 1
            let conn = try await TCP.connect(try await server.address(), options: options)
            let line = ByteBuffer(string: String(repeating: "w", count: 1023) + "\n")
            do throws(SillyError) {
                try await conn.write(contentsOf: Array(repeating: line, count: 8 * 1024))  // 8 MiB
            } catch {
                #expect(await server.waitForLog("no complete line for"), "\(error); \(server.log)")
                continue
            }
            await conn.shutdownOutput()  // its end follows the lines: the close need not wait for it
            #expect(await server.waitForLog("Idle timeout ["))
            if server.log.contains("no complete line for") { continue }
            kill(server.process.processIdentifier, SIGTERM)
            // The close may still wait for the client (unless the kernel took all the echoes), and
            // so does the process. Ended at once, it lost what was still queued, and the bytes of
            // the client's it had not read made the kernel answer with a reset.
            await conn.setReceiveLimit(nil)
            let echoed = try await conn.readToEnd()
            #expect(await server.exitStatus() == 0)
            var expected = ByteBuffer()
            for _ in 0..<(echoed.readableBytes / 1024) { expected.writeImmutableBuffer(line) }
            #expect(echoed.readableBytes > 0 && echoed == expected)  // whole lines, unaltered
            #expect(server.log.contains("sent \(echoed.readableBytes) bytes, messages \(echoed.readableBytes / 1024);"), "received \(echoed.readableBytes); \(server.log)")
            await conn.close()
            return
        }
        Issue.record("the server never found its echoes backed up")
    }

    @Test("a second signal cuts the grace period short: the connection still open is closed, totals logged, exit code 0")
    func secondSignal() async throws {
        let server = try ServerProcess(["--shutdown-grace", "300s", "--idle-timeout", "0"])
        // Its handler would wait for this client's echoes to drain for 5 minutes.
        let conn = try await clientWithEchoesBackedUp(at: try await server.address())
        kill(server.process.processIdentifier, SIGTERM)
        #expect(await server.waitForLog("Shutting down: 1 connection has"))
        kill(server.process.processIdentifier, SIGINT)
        #expect(await server.exitStatus() == 0)
        #expect(server.log.contains("Shutdown complete. Totals: connections open 0, accepted 1"), "\(server.log)")
        await conn.close()
    }

    @Test("SIGINT, and SIGHUP (its terminal closed), stop the server the same way", arguments: [SIGINT, SIGHUP])
    func otherSignals(signal: Int32) async throws {
        let server = try ServerProcess([])
        _ = try await server.address()
        #expect(await server.stop(signal: signal) == 0)
        #expect(server.log.contains("Shutdown complete"))
    }

    @Test("started to outlive its terminal (nohup: SIGHUP ignored), a hangup leaves it running")
    func hangupIgnoredAtStart() async throws {
        let server = try ServerProcess(["-c", "trap '' HUP; exec \(sillyEchoPath) --addr 127.0.0.1:0"], addPort: false, executable: "/bin/sh")
        let address = try await server.address()
        // The kernel's view: SIGHUP still ignored, no handler installed for it (bit 0: signal 1).
        let status = readWholeFile("/proc/\(server.process.processIdentifier)/status").split(separator: "\n")
        func mask(_ name: String) -> UInt64? {
            status.first { $0.hasPrefix(name) }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
        }
        #expect(mask("SigIgn:").map { $0 & 1 == 1 } == true, "\(status)")
        #expect(mask("SigCgt:").map { $0 & 1 == 0 } == true, "\(status)")
        kill(server.process.processIdentifier, SIGHUP)
        let conn = try await TCP.connect(address)
        try await conn.write("still here\n")
        #expect(try await conn.line() == "still here\n")
        await conn.close()
        #expect(await server.stop() == 0)
    }

    @Test("a malformed address prints one clear line and exits non-zero", arguments: ["127.0.0.1:99999", "nonsense", "[::1"])
    func badAddress(address: String) async throws {
        let server = try ServerProcess(["--addr", address], addPort: false)
        let status = await server.exitStatus()
        #expect(status != nil && status != 0)
        let lines = server.errorLog.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("invalid address '\(address)'") == true, "stderr: \(server.errorLog)")
    }

    @Test("a busy port prints one clear line naming it and exits non-zero")
    func busyPort() async throws {
        let holder = try await TCP.listen("127.0.0.1:0") { _ in }
        let address = "127.0.0.1:\(holder.port)"
        let server = try ServerProcess(["--addr", address], addPort: false)
        let status = await server.exitStatus()
        #expect(status != nil && status != 0)
        #expect(server.errorLog.split(separator: "\n").count == 1)
        #expect(server.errorLog.contains("address already in use: \(address)"), "stderr: \(server.errorLog)")
        await holder.close()
    }

    @Test("--self-test: the tutorial's 3 clients × 5 messages, every echo checked, exit 0")
    func selfTest() async throws {
        let run = try ServerProcess(["--self-test", "--interval", "10ms"])
        #expect(await run.exitStatus() == 0)
        let log = run.log
        #expect(log.split(separator: "\n").filter { $0.hasPrefix("Send [") }.count == 15)
        #expect(log.split(separator: "\n").filter { $0.hasPrefix("Receive [") }.count == 15)
        #expect(log.contains("Self-test passed: every echo matched"))
    }

    @Test("a self-test client whose echo is another line says what it sent and what came, quoted as they read")
    func selfTestMismatch() async throws {
        // In process: the executable's --self-test runs against its own server, which echoes.
        let listener = try await TCP.listen("127.0.0.1:0") { conn in
            _ = try await conn.read(until: "\n")
            var reply = ByteBuffer(string: "it's ")
            reply.writeBytes([0xFF, UInt8(ascii: "\n")])
            try await conn.write(reply)
        }
        let said = Mutex<[String]>([])
        let passed = await SelfTest(clients: 1, messages: 1).run(against: "127.0.0.1:\(listener.port)") { line in
            said.withLock { $0.append(line) }
        }
        await listener.close()
        #expect(!passed)
        let lines = said.withLock { $0 }
        let mismatch = try #require(lines.first { $0.hasPrefix("Echo data mismatch!") }, "\(lines)")
        #expect(mismatch.hasSuffix(#"\n", got "it's \xFF\n""#), "\(mismatch)")
    }

    @Test("--self-test refuses a server its plain-line clients cannot test, rather than fail it")
    func selfTestRefusals() async throws {
        for (arguments, message) in [(["--mode", "command"], "cannot test --mode command"),
                                     (["--proxy-protocol"], "cannot be combined with --tls-cert or --proxy-protocol")] {
            try await expectUsageError(["--self-test"] + arguments, message)
        }
        let raw = try ServerProcess(["--self-test", "--mode", "raw", "--interval", "10ms", "--clients", "1", "--messages", "2"])
        #expect(await raw.exitStatus() == 0)
    }

    @Test("an option that would do nothing without its companion is refused, naming the companion")
    func optionsWithoutTheirCompanion() async throws {
        for (arguments, message) in [(["--clients", "4"], "--clients, --messages and --interval go with --self-test"),
                                     (["--interval", "10ms"], "--clients, --messages and --interval go with --self-test"),
                                     (["--proxy-header-timeout", "1s"], "--proxy-header-timeout goes with --proxy-protocol")] {
            try await expectUsageError(arguments, message)
        }
    }

    @Test("the separate client: connect, send 'Hello from client', print the echo")
    func separateClient() async throws {
        let server = try ServerProcess([])
        let address = try await server.address()
        let client = try ServerProcess(["client", address], addPort: false)
        #expect(await client.exitStatus() == 0)
        #expect(client.log.contains("Connected to server: \(address)"))
        #expect(client.log.contains("Received echo: Hello from client"))
        let byOption = try ServerProcess(["client", "--addr", address, "--message", "by --addr"], addPort: false)
        #expect(await byOption.exitStatus() == 0)
        #expect(byOption.log.contains("Received echo: by --addr"), "\(byOption.log)")
        try await expectUsageError(["client", address, "--addr", "127.0.0.1:1"], "two addresses given")
        try await expectUsageError(["client", "--addr", address, "--message", "two\nlines"], "--message must be one line")
        #expect(await server.stop() == 0)
    }

    @Test("the client against nothing fails with a clear error")
    func clientRefused() async throws {
        let address = "127.0.0.1:\(RawSocket.freePortBelowEphemeralRange())"
        let client = try ServerProcess(["client", address], addPort: false)
        let status = await client.exitStatus()
        #expect(status != nil && status != 0)
        #expect(client.errorLog.contains("connection refused: \(address)"))
    }

    @Test("the client against a command-mode server: the banner is not its echo, so it fails, naming the reply")
    func clientAgainstCommandMode() async throws {
        let server = try ServerProcess(["--mode", "command"])
        let client = try ServerProcess(["client", try await server.address()], addPort: false)
        let status = await client.exitStatus()
        #expect(status != nil && status != 0)
        #expect(client.log.contains(#"Received echo: "Welcome to Silly Echo Server!""#), "\(client.log)")
        #expect(client.errorLog.contains("the reply is not the line sent: \"Welcome to Silly Echo Server!\""), "\(client.errorLog)")
        #expect(await server.stop() == 0)
    }

    @Test("the client against a server that answers another line: the reply quoted as it reads, an apostrophe as is, a byte not UTF-8 as \\xNN, an escape sequence inert")
    func clientMismatchQuoted() async throws {
        let server = try await TCP.listen("127.0.0.1:0") { conn in
            _ = try await conn.read(until: "\n")
            var reply = ByteBuffer(string: "\u{1B}[2Jit's \"full\"\t")
            reply.writeBytes([0xFF, UInt8(ascii: "\n")])
            try await conn.write(reply)
        }
        let client = try ServerProcess(["client", "127.0.0.1:\(server.port)"], addPort: false)
        let status = await client.exitStatus()
        await server.close()
        #expect(status == 1)
        #expect(client.errorLog.contains(#"the reply is not the line sent: "\u{1B}[2Jit's \"full\"\t\xFF" "#), "\(client.errorLog)")
        #expect(client.log.contains(#"Received echo: "\u{1B}[2Jit's \"full\"\t\xFF""#), "\(client.log)")
        #expect(!client.log.contains("\u{1B}") && !client.errorLog.contains("\u{1B}"))
    }

    @Test("the client compares bytes, not Strings: an echo that is the same text in another Unicode form is a mismatch")
    func clientComparesBytes() async throws {
        let server = try await TCP.listen("127.0.0.1:0") { conn in
            _ = try await conn.read(until: "\n")
            try await conn.write("cafe\u{301}\n")  // decomposed: the same String, other bytes
        }
        let client = try ServerProcess(["client", "127.0.0.1:\(server.port)", "--message", "caf\u{E9}"], addPort: false)
        let status = await client.exitStatus()
        await server.close()
        #expect(status == 1, "\(client.log)")
        #expect(client.errorLog.contains("the reply is not the line sent"), "\(client.errorLog)")
    }

    @Test("the client against a server that closes without answering: one 'Receive failed' line, non-zero status")
    func clientUnanswered() async throws {
        let mute = try await TCP.listen("127.0.0.1:0") { conn in
            _ = try? await conn.read(until: "\n")
        }
        let client = try ServerProcess(["client", "127.0.0.1:\(mute.port)"], addPort: false)
        let status = await client.exitStatus()
        await mute.close()
        #expect(status != nil && status != 0)
        #expect(client.log.components(separatedBy: "Receive failed: socket closed").count == 2, "\(client.log)")
        #expect(client.errorLog.isEmpty, "\(client.errorLog)")
    }
}
